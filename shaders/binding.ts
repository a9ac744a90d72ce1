/**
 * One way to bind a kernel. A kernel declares its interface once (uniform shape fields and
 * tensor slots); {@link KernelInterface.wgsl} emits the matching WGSL declarations and
 * {@link KernelInterface.dispatch} checks every view against its extent, packs the uniform
 * words in the same order and builds the bind group. Adding a kernel is writing its WGSL body.
 *
 * The emitted convention, identical in every kernel:
 * - binding 0: `var<uniform> u: Shape` with the u32 `dims`, then the f32 `floats`, then
 *   `<slot>_off, <slot>_rs` (offset and run stride, in elements of the slot's type) per slot;
 * - binding 1 (when `runScalars`): `var<storage, read> scalars: array<RunScalars>`;
 * - then one `array<elem>` storage binding per slot, in slot order, and for each slot
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

/** One tensor binding of a kernel. */
export interface Slot {
  name: string;
  /** "read" (default) or "read_write" (written, or sharing a buffer with a written slot). */
  access?: "read" | "read_write";
  /** WGSL element type (default f32); vec4 slots take offsets and strides divisible by 4. */
  elem?: "f32" | "u32" | "vec4<f32>";
}

/** A view bound to a slot with the number of elements each run reads or writes from it. */
export interface BoundView {
  view: TensorView;
  /** Elements (f32 units) per run that the kernel may touch. */
  length: number;
}

/** What one dispatch of a kernel binds. */
export interface DispatchArgs {
  /** Compiled once per distinct source through the GPU's pipeline cache. */
  code: string;
  dims: Record<string, number>;
  floats?: Record<string, number>;
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

/** Throws unless `runs` run-stacked tensors of `length` elements fit inside `v.buffer`. */
export function assertViewFits(what: string, v: TensorView, runs: number, length: number): void {
  const ok = [v.offset, v.runStride, length, runs].every((x) => Number.isInteger(x) && x >= 0);
  const end = v.offset + (runs - 1) * v.runStride + length;
  if (!ok || runs < 1 || end * 4 > v.buffer.size) {
    throw new Error(
      `${what}: ${runs} runs of ${length} elements at offset ${v.offset}, stride ${v.runStride} ` +
        `do not fit in a buffer of ${v.buffer.size} bytes`,
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

/** A kernel's declared interface: the WGSL it implies and the dispatches that bind it. */
export class KernelInterface {
  readonly #name: string;
  readonly #dims: readonly string[];
  readonly #floats: readonly string[];
  readonly #slots: readonly Slot[];
  readonly #runScalars: boolean;
  /** The declarations every variant of this kernel starts with (see the module doc). */
  readonly wgsl: string;

  constructor(
    name: string,
    spec: { dims: string[]; floats?: string[]; slots: Slot[]; runScalars?: boolean },
  ) {
    this.#name = name;
    this.#dims = spec.dims;
    this.#floats = spec.floats ?? [];
    this.#slots = spec.slots;
    this.#runScalars = spec.runScalars ?? false;
    const fields = [
      ...this.#dims.map((d) => `${d}: u32`),
      ...this.#floats.map((f) => `${f}: f32`),
      ...this.#slots.map((s) => `${s.name}_off: u32, ${s.name}_rs: u32`),
    ];
    if (fields.length === 0) fields.push("pad: u32");
    const first = this.#runScalars ? 2 : 1;
    this.wgsl = [
      this.#runScalars ? RUN_SCALARS_WGSL : "",
      `struct Shape {\n  ${fields.join(",\n  ")},\n}`,
      "@group(0) @binding(0) var<uniform> u: Shape;",
      this.#runScalars
        ? "@group(0) @binding(1) var<storage, read> scalars: array<RunScalars>;"
        : "",
      ...this.#slots.map((s, i) =>
        `@group(0) @binding(${first + i}) var<storage, ${s.access ?? "read"}> ${s.name}: ` +
        `array<${s.elem ?? "f32"}>;`
      ),
      ...this.#slots.map((s) =>
        `fn at_${s.name}(r: u32, i: u32) -> u32 { return u.${s.name}_off + r * u.${s.name}_rs + i; }`
      ),
    ].filter((l) => l !== "").join("\n");
  }

  /** Checks the views, packs the uniform and builds the bind group of one dispatch of `code`. */
  dispatch(gpu: Gpu, args: DispatchArgs): Dispatch {
    const name = this.#name;
    if (this.#runScalars !== (args.scalars !== undefined)) {
      throw new Error(`${name}: RunScalars ${this.#runScalars ? "missing" : "not declared"}`);
    }
    const words = new Uint32Array(
      Math.max(1, this.#dims.length + this.#floats.length + 2 * this.#slots.length),
    );
    const floats = new Float32Array(words.buffer);
    let w = 0;
    for (const d of this.#dims) {
      const v = args.dims[d];
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new Error(`${name}: ${d} must be a u32, got ${v}`);
      }
      words[w++] = v;
    }
    for (const f of this.#floats) {
      const v = args.floats?.[f];
      if (typeof v !== "number") throw new Error(`${name}: missing f32 ${f}`);
      floats[w++] = v;
    }
    const buffers: GPUBuffer[] = [];
    for (const s of this.#slots) {
      const bound = args.views[s.name];
      if (!bound) throw new Error(`${name}: missing tensor ${s.name}`);
      const { view, length } = bound;
      assertViewFits(`${name} ${s.name}`, view, args.runs, length);
      const unit = s.elem === "vec4<f32>" ? 4 : 1;
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
