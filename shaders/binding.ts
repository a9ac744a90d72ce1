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
 * Each binding covers only the bytes its runs touch; the uniform's offsets count from the
 * binding's start.
 *
 * Aliasing (WebGPU): within one dispatch no buffer is bound both read-only and writable, and no
 * two writable bindings overlap. A slot declared "read" may share its buffer only with other
 * "read" slots. "read_write" slots (declared so, even if only read, where views may share a
 * buffer with an output) that view one buffer are bound once, together: the dispatch's
 * variant declares the first and reads the others through it ({@link groupSlots}). Every bind
 * group is checked once more where it is built (`bindBuffers`), on every implementation.
 *
 * @module
 */

import {
  bindBuffers,
  type BufferBinding,
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

/** A slot's view as bound in one dispatch: its byte span and element sizes. */
interface SlotUse {
  slot: Slot;
  index: number;
  view: TensorView;
  /** Bytes per element of the view's offsets (4, or 8 for a df64/f64 R). */
  bytes: number;
  /** Elements per WGSL array element (4 for vec4 slots). */
  unit: number;
  /** Bytes [start, end) the runs touch. */
  start: number;
  end: number;
}

/**
 * The slots of one dispatch grouped into bindings. Read-only slots get a binding each. Slots
 * declared `read_write` that view one buffer share one binding (the union of their spans):
 * WebGPU forbids two writable bindings with overlapping ranges, and a buffer bound writable may
 * not be bound read-only too (usage scope), so an in-place kernel binds its buffer once. A
 * read-only slot on a buffer that a `read_write` slot also views is refused: the kernel did not
 * declare that it may alias.
 */
function groupSlots(kernel: string, uses: SlotUse[]): SlotUse[][] {
  const groups: SlotUse[][] = [];
  const byBuffer = new Map<GPUBuffer, SlotUse[]>();
  for (const use of uses) {
    const writable = use.slot.access === "read_write";
    const shared = writable ? byBuffer.get(use.view.buffer) : undefined;
    const other = uses.find((o) =>
      o !== use && o.view.buffer === use.view.buffer &&
      (o.slot.access === "read_write") !== writable
    );
    if (other) {
      const [r, w] = writable ? [other, use] : [use, other];
      const label = use.view.buffer.label ? ` "${use.view.buffer.label}"` : "";
      throw new Error(
        `${kernel}: read-only slot ${r.slot.name} and written slot ${w.slot.name} view one ` +
          `buffer${label}; WebGPU forbids binding a buffer read-only and writable in one ` +
          `dispatch (declare ${r.slot.name} read_write if the kernel may alias it)`,
      );
    }
    if (shared) {
      if ((shared[0].slot.elem ?? "real") !== (use.slot.elem ?? "real")) {
        throw new Error(
          `${kernel}: slots ${shared[0].slot.name} and ${use.slot.name} share a buffer but ` +
            `not an element type`,
        );
      }
      shared.push(use);
      continue;
    }
    const group = [use];
    if (writable) byBuffer.set(use.view.buffer, group);
    groups.push(group);
  }
  return groups;
}

/** The WGSL declaration of `slot` at `binding`. */
function slotDeclaration(binding: number, slot: Slot): string {
  const elem = (slot.elem ?? "real") === "real" ? "R" : slot.elem;
  return `@group(0) @binding(${binding}) var<storage, ${slot.access ?? "read"}> ${slot.name}: ` +
    `array<${elem}>;`;
}

/**
 * `code` with the slots merged into another's binding (each group's first) declared no more and
 * read through the first slot's array: `name[` becomes `first[` (slot names are the kernel
 * body's storage identifiers, by convention never shadowed).
 */
function mergeSlots(code: string, groups: SlotUse[][], first: number): string {
  for (const [head, ...rest] of groups) {
    for (const use of rest) {
      const name = use.slot.name;
      const decl = `${slotDeclaration(first + use.index, use.slot)}\n`;
      if (!code.includes(decl)) throw new Error(`slot ${name}: declaration not found`);
      code = code.replace(decl, "").replace(
        new RegExp(`(?<![\\w.])${name}(\\s*)\\[`, "g"),
        `${head.slot.name}$1[`,
      );
    }
  }
  return code;
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
    this.wgsl = [
      realWgsl(precision),
      runScalars ? RUN_SCALARS_WGSL : "",
      `struct Shape {\n  ${fields.join(",\n  ")},\n}`,
      "@group(0) @binding(0) var<uniform> u: Shape;",
      runScalars ? "@group(0) @binding(1) var<storage, read> scalars: array<RunScalars>;" : "",
      ...slots.map((s, i) => slotDeclaration(first + i, s)),
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
    const uses = slots.map((slot, index): SlotUse => {
      const bound = args.views[slot.name];
      if (!bound) throw new Error(`${name}: missing tensor ${slot.name}`);
      const { view, length } = bound;
      const elem = slot.elem ?? "real";
      const bytes = elem === "real" ? realBytes(precision) : 4;
      assertViewFits(`${name} ${slot.name}`, view, args.runs, length, bytes);
      const unit = elem === "vec4<f32>" ? 4 : 1;
      if (view.offset % unit || view.runStride % unit || view.buffer.size % 16) {
        throw new Error(`${name}: ${slot.name} is a vec4 slot but its view is not 16-byte aligned`);
      }
      const start = view.offset * bytes;
      const end = (view.offset + (args.runs - 1) * view.runStride + length) * bytes;
      return { slot, index, view, bytes, unit, start, end };
    });
    const groups = groupSlots(name, uses);
    // Each binding from its group's first element, down to the storage offset alignment, to its
    // last, up to 16 bytes: the offsets in the uniform count from the binding's start.
    const align = gpu.device.limits.minStorageBufferOffsetAlignment;
    const first = runScalars ? 2 : 1;
    const bindings: BufferBinding[] = groups.map((group) => {
      const buffer = group[0].view.buffer;
      const offset = Math.floor(Math.min(...group.map((g) => g.start)) / align) * align;
      const end = Math.max(...group.map((g) => g.end));
      const size = Math.min(Math.ceil((end - offset) / 16) * 16, buffer.size - offset);
      for (const g of group) {
        words[w + 2 * g.index] = (g.view.offset - offset / g.bytes) / g.unit;
        words[w + 2 * g.index + 1] = g.view.runStride / g.unit;
      }
      return {
        binding: first + group[0].index,
        name: group.map((g) => g.slot.name).join("+"),
        writable: group[0].slot.access === "read_write",
        buffer,
        offset,
        size,
      };
    });
    const max = gpu.device.limits.maxComputeWorkgroupsPerDimension;
    if (args.workgroups.some((g) => !Number.isInteger(g) || g < 1 || g > max)) {
      throw new Error(`${name}: ${args.workgroups.join("x")} workgroups (limit ${max} each)`);
    }
    const merged = groups.some((g) => g.length > 1);
    const pipeline = gpu.pipeline(merged ? mergeSlots(args.code, groups, first) : args.code);
    const uniform = uniformBuffer(gpu, words, `${name} shape`);
    const bindGroup = bindBuffers(gpu, name, pipeline, [
      { binding: 0, name: "shape", writable: false, buffer: uniform },
      ...(args.scalars
        ? [{ binding: 1, name: "scalars", writable: false, buffer: args.scalars }]
        : []),
      ...bindings,
    ]);
    return { pipeline, bindGroup, workgroups: args.workgroups };
  }
}
