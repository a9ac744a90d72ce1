/**
 * One way to bind a kernel. A kernel declares its interface once (uniform shape fields and
 * tensor slots); {@link KernelInterface.wgsl} emits the matching WGSL declarations and
 * {@link KernelInterface.dispatch} checks every view against its extent, packs the uniform
 * words in the same order and builds the bind group. Adding a kernel is writing its WGSL body.
 *
 * The emitted convention, identical in every kernel:
 * - the interface's precision (`precision.ts`): `alias R` and the `r_*` functions the body
 *   computes with;
 * - binding 0: `var<uniform> u: Shape` with the R `reals` first (8-byte aligned in df64 and
 *   f64), then the u32 `dims`, the f32 `floats`, df64's runtime zero `df_zero`, then
 *   `<slot>_off, <slot>_rs` (offset and run stride, in elements of the slot's type) per slot;
 * - binding 1 (when `runScalars`): `var<storage, read> scalars: array<RunScalars>`;
 * - then one `array<elem>` storage binding per slot (elem R unless the slot says otherwise), in slot order, and for each slot
 *   `fn at_<slot>(r: u32, i: u32) -> u32` = `u.<slot>_off + r * u.<slot>_rs + i`.
 *
 * Aliasing (WebGPU usage scopes): within one dispatch a buffer is either read-only or written,
 * never both. A slot declared "read" may share its buffer only with other "read" slots;
 * "read_write" slots (declared so, even if only read, where views may share a buffer with an
 * output) may share one another's buffers.
 *
 * @module
 */

import {
  bindBuffers,
  type Dispatch,
  type Gpu,
  RUN_SCALARS_WGSL,
  type TensorView,
  uniformBuffer,
} from "./gpu.ts";
import { DF64_ZERO_FIELD, encodeReals, type Precision, realBytes, realWgsl } from "./precision.ts";

/** One tensor binding of a kernel. */
export interface Slot {
  name: string;
  /** "read" (default) or "read_write" (written, or sharing a buffer with a written slot). */
  access?: "read" | "read_write";
  /**
   * WGSL element type: "real" (default) is the interface's `R`; "f32" stays float32 in every
   * precision; vec4 slots (float32 only) take offsets and strides divisible by 4.
   */
  elem?: "real" | "f32" | "u32" | "vec4<f32>";
}

/** A view bound to a slot with the number of elements each run reads or writes from it. */
export interface BoundView {
  view: TensorView;
  /** Elements (of the slot's type; scalar f32 units for vec4 slots) per run it may touch. */
  length: number;
}

/** What one dispatch of a kernel binds. */
export interface DispatchArgs {
  /** Compiled once per distinct source through the GPU's pipeline cache. */
  code: string;
  dims: Record<string, number>;
  floats?: Record<string, number>;
  /** Values of the interface's `reals` (float64 numbers, sent in the kernel's precision). */
  reals?: Record<string, number>;
  /** One entry per slot (absent optional slots are simply not declared by the variant). */
  views: Record<string, BoundView>;
  /** Runs (the checks of every view cover runs 0..runs-1). */
  runs: number;
  workgroups: [number, number, number];
  /** The RunScalars records, when the interface declares them. */
  scalars?: GPUBuffer;
}

/** Invocations per workgroup of the elementwise kernels. */
export const ELEMENTWISE_WG = 256;
/**
 * Cap on workgroups along x for grid-stride elementwise kernels. On lavapipe each workgroup
 * costs a few microseconds of its own: the SGD step over 3 × 270k elements took 10.7 ms with
 * up to 4096 workgroups per run, 5.4 ms with 256, 4.5 ms with 64 (16: 4.3 ms).
 */
export const ELEMENTWISE_MAX_GROUPS = 64;
/** WebGPU's guaranteed maximum of workgroups per dimension. */
export const MAX_GROUPS_PER_DIM = 65535;

/** Ceiling division, for workgroup counts. */
export function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}

/** Workgroups of a grid-stride elementwise kernel over `count` elements of each of `runs` runs. */
export function gridStride(count: number, runs: number): [number, number, number] {
  return [Math.max(1, Math.min(ceilDiv(count, ELEMENTWISE_WG), ELEMENTWISE_MAX_GROUPS)), 1, runs];
}

/**
 * Workgroups of a one-invocation-per-element kernel over `count` elements per run, folded
 * over x and y (WGSL: `let i = (wid.y * groups.x + wid.x) * WG + lid`).
 */
export function foldedGrid(count: number, runs: number, wg: number): [number, number, number] {
  const groups = ceilDiv(count, wg);
  const x = Math.min(groups, MAX_GROUPS_PER_DIM);
  return [x, ceilDiv(groups, x), runs];
}

/**
 * The entry point of a one-invocation-per-element kernel over `u.count` elements per run,
 * dispatched with {@link foldedGrid}(count, runs, `wg`): `body` sees the element `i` and the run
 * `r` (invocations past the end have returned).
 */
export function foldedMain(wg: number, body: string): string {
  return /* wgsl */ `@compute @workgroup_size(${wg})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = (wid.y * groups.x + wid.x) * ${wg}u + lid;
  let r = wid.z;
  if (i >= u.count) { return; }
${body}
}
`;
}

/**
 * Throws unless `runs` run-stacked tensors of `length` elements of `bytes` each fit inside
 * `v.buffer`.
 */
export function assertViewFits(
  what: string,
  v: TensorView,
  runs: number,
  length: number,
  bytes = 4,
): void {
  const ok = [v.offset, v.runStride, length, runs].every((x) => Number.isInteger(x) && x >= 0);
  const end = v.offset + (runs - 1) * v.runStride + length;
  if (!ok || runs < 1 || end * bytes > v.buffer.size) {
    throw new Error(
      `${what}: ${runs} runs of ${length} ${bytes}-byte elements at offset ${v.offset}, stride ` +
        `${v.runStride} do not fit in a buffer of ${v.buffer.size} bytes`,
    );
  }
}

/** Throws unless every named value is an integer >= `min`. */
export function assertCounts(kernel: string, values: Record<string, number>, min = 1): void {
  for (const [name, n] of Object.entries(values)) {
    if (!Number.isInteger(n) || n < min) {
      throw new Error(`${kernel}: ${name} must be an integer >= ${min}, got ${n}`);
    }
  }
}

/** What a kernel declares: its precision, uniform fields, tensor slots and RunScalars use. */
export interface KernelSpec {
  /** The arithmetic of R (default f32). */
  precision?: Precision;
  dims: string[];
  /** Uniform reals (type R). */
  reals?: string[];
  /** Uniform float32s. */
  floats?: string[];
  slots: Slot[];
  runScalars?: boolean;
}

/** A kernel's declared interface: the WGSL it implies and the dispatches that bind it. */
export class KernelInterface {
  readonly #name: string;
  readonly #spec: Required<KernelSpec>;
  /** The declarations every variant of this kernel starts with (see the module doc). */
  readonly wgsl: string;

  constructor(name: string, spec: KernelSpec) {
    this.#name = name;
    this.#spec = { precision: "f32", reals: [], floats: [], runScalars: false, ...spec };
    const { precision, dims, reals, floats, slots, runScalars } = this.#spec;
    if (precision !== "f32" && slots.some((s) => s.elem === "vec4<f32>")) {
      throw new Error(`${name}: vec4 slots are float32 only, not ${precision}`);
    }
    const fields = [
      ...reals.map((f) => `${f}: R`),
      ...dims.map((d) => `${d}: u32`),
      ...floats.map((f) => `${f}: f32`),
      ...(precision === "df64" ? [`${DF64_ZERO_FIELD}: u32`] : []),
      ...slots.map((s) => `${s.name}_off: u32, ${s.name}_rs: u32`),
    ];
    if (fields.length === 0) fields.push("pad: u32");
    const first = runScalars ? 2 : 1;
    const elem = (s: Slot) => (s.elem ?? "real") === "real" ? "R" : s.elem;
    this.wgsl = [
      realWgsl(precision),
      runScalars ? RUN_SCALARS_WGSL : "",
      `struct Shape {\n  ${fields.join(",\n  ")},\n}`,
      "@group(0) @binding(0) var<uniform> u: Shape;",
      runScalars ? "@group(0) @binding(1) var<storage, read> scalars: array<RunScalars>;" : "",
      ...slots.map((s, i) =>
        `@group(0) @binding(${first + i}) var<storage, ${s.access ?? "read"}> ${s.name}: ` +
        `array<${elem(s)}>;`
      ),
      ...slots.map((s) =>
        `fn at_${s.name}(r: u32, i: u32) -> u32 { return u.${s.name}_off + r * u.${s.name}_rs + i; }`
      ),
    ].filter((l) => l !== "").join("\n");
  }

  /** The arithmetic of this interface's R. */
  get precision(): Precision {
    return this.#spec.precision;
  }

  /** Checks the views, packs the uniform and builds the bind group of one dispatch of `code`. */
  dispatch(gpu: Gpu, args: DispatchArgs): Dispatch {
    const name = this.#name;
    const { precision, dims, reals, floats, slots, runScalars } = this.#spec;
    if (runScalars !== (args.scalars !== undefined)) {
      throw new Error(`${name}: RunScalars ${runScalars ? "missing" : "not declared"}`);
    }
    const realWords = realBytes(precision) / 4;
    const words = new Uint32Array(
      Math.max(
        1,
        reals.length * realWords + dims.length + floats.length + 1 + 2 * slots.length,
      ),
    );
    const asFloats = new Float32Array(words.buffer);
    const realValues = reals.map((f) => {
      const v = args.reals?.[f];
      if (typeof v !== "number") throw new Error(`${name}: missing real ${f}`);
      return v;
    });
    words.set(new Uint32Array(encodeReals(precision, realValues).buffer));
    let w = reals.length * realWords;
    for (const d of dims) {
      const v = args.dims[d];
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new Error(`${name}: ${d} must be a u32, got ${v}`);
      }
      words[w++] = v;
    }
    for (const f of floats) {
      const v = args.floats?.[f];
      if (typeof v !== "number") throw new Error(`${name}: missing f32 ${f}`);
      asFloats[w++] = v;
    }
    if (precision === "df64") words[w++] = 0; // df_zero: the guard's runtime 0u
    const buffers: GPUBuffer[] = [];
    for (const s of slots) {
      const bound = args.views[s.name];
      if (!bound) throw new Error(`${name}: missing tensor ${s.name}`);
      const { view, length } = bound;
      const elem = s.elem ?? "real";
      const bytes = elem === "real" ? realBytes(precision) : 4;
      assertViewFits(`${name} ${s.name}`, view, args.runs, length, bytes);
      const unit = elem === "vec4<f32>" ? 4 : 1;
      if (view.offset % unit || view.runStride % unit || view.buffer.size % 16) {
        throw new Error(`${name}: ${s.name} is a vec4 slot but its view is not 16-byte aligned`);
      }
      words[w++] = view.offset / unit;
      words[w++] = view.runStride / unit;
      buffers.push(view.buffer);
    }
    const max = gpu.device.limits.maxComputeWorkgroupsPerDimension;
    if (args.workgroups.some((g) => !Number.isInteger(g) || g < 1 || g > max)) {
      throw new Error(`${name}: ${args.workgroups.join("x")} workgroups (limit ${max} each)`);
    }
    const pipeline = gpu.pipeline(args.code);
    const uniform = uniformBuffer(gpu, words, `${name} shape`);
    const bindGroup = bindBuffers(gpu, pipeline, [
      uniform,
      ...(args.scalars ? [args.scalars] : []),
      ...buffers,
    ]);
    return { pipeline, bindGroup, workgroups: args.workgroups };
  }
}
