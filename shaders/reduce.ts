/**
 * Reductions for norms and metrics: per-run dot products (squared norms), the normalised
 * distance between two weight vectors (the angle near 0), and column sums (the bias gradient).
 *
 * Accuracy: one workgroup reduces one run. Each invocation sums a strided CHUNK of elements into
 * a short partial, adds the partials into its accumulator, and the workgroup then adds the
 * accumulators in a binary tree. So no f32 sum runs longer than ~100 terms, and sums of ~300k
 * positive terms stay within ~1e-7 relative (measured ~5e-8 at 270k).
 *
 * Aliasing rule (WebGPU usage scopes: within one dispatch a buffer is either read-only or
 * writable, never both, even at disjoint ranges): the vector inputs a and b are
 * `var<storage, read>`, so one buffer may be bound as both, but `out` must not live in a's or b's
 * buffer. The per-run norms of {@link normalizedDistanceKernel} are declared `read_write` (and
 * only read), so they may share `out`'s buffer (a metrics buffer holding norms and distances,
 * at non-overlapping ranges) but, in turn, not a's or b's. Outputs of several dispatches may
 * share one buffer.
 *
 * @module
 */

import { ceilDiv, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";

/** Invocations per workgroup of the one-workgroup-per-run reductions (a power of two). */
export const REDUCE_WG = 256;
/** Strided elements each invocation sums before adding to its accumulator. */
const CHUNK = 16;

const rw = (name: string) => ({ name, access: "read_write" as const });
/** The norms are `read_write` although only read (the module's aliasing rule). */
const REDUCE: Record<ReduceVariant, KernelInterface> = {
  dot: new KernelInterface("dot", {
    dims: ["length"],
    slots: [{ name: "a" }, { name: "b" }, rw("out")],
  }),
  distance: new KernelInterface("distance", {
    dims: ["length"],
    slots: [{ name: "a" }, { name: "b" }, rw("out"), rw("a_norm2"), rw("b_norm2")],
  }),
};

/** WGSL: `tree_sum(lid, v)` adds `v` over the workgroup (call from uniform control flow). */
function treeSumWgsl(size: number): string {
  return /* wgsl */ `
var<workgroup> partial: array<f32, ${size}>;
fn tree_sum(lid: u32, v: f32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var s = ${size / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { partial[lid] = partial[lid] + partial[lid + s]; }
    workgroupBarrier();
  }
  return partial[0];
}`;
}

/** Which per-run sum {@link reduceWgsl} generates. */
export type ReduceVariant = "dot" | "distance";

/**
 * WGSL of the per-run sums, one workgroup per run (`workgroup_id.z`): "dot" sums a_i*b_i,
 * "distance" sums (a_i/|a| - b_i/|b|)^2 with |a|^2, |b|^2 read from per-run scalars.
 */
export function reduceWgsl(variant: ReduceVariant): string {
  const distance = variant === "distance";
  const term = distance
    ? "let d = a[ia + i] * sa - b[ib + i] * sb; inner += d * d;"
    : "inner += a[ia + i] * b[ib + i];";
  return /* wgsl */ `${REDUCE[variant].wgsl}
${treeSumWgsl(REDUCE_WG)}

@compute @workgroup_size(${REDUCE_WG})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let lid = lid3.x;
  let r = wid.z;
  let n = u.length;
  let ia = at_a(r, 0u);
  let ib = at_b(r, 0u);
${
    distance
      ? `  let sa = 1.0 / sqrt(a_norm2[at_a_norm2(r, 0u)]);
  let sb = 1.0 / sqrt(b_norm2[at_b_norm2(r, 0u)]);`
      : ""
  }
  var acc = 0.0;
  for (var base = lid; base < n; base += ${REDUCE_WG * CHUNK}u) {
    var inner = 0.0;
    for (var k = 0u; k < ${CHUNK}u; k++) {
      let i = base + k * ${REDUCE_WG}u;
      if (i < n) { ${term} }
    }
    acc += inner;
  }
  let total = tree_sum(lid, acc);
  if (lid == 0u) { out[at_out(r, 0u)] = total; }
}`;
}

/** One workgroup per run over `length` elements of each vector; per-run scalars are 1 long. */
function reduceDispatch(
  gpu: Gpu,
  variant: ReduceVariant,
  runs: number,
  length: number,
  vectors: Record<string, TensorView>,
  scalars: Record<string, TensorView>,
): Dispatch {
  const bound = (views: Record<string, TensorView>, n: number) =>
    Object.fromEntries(Object.entries(views).map(([k, view]) => [k, { view, length: n }]));
  return REDUCE[variant].dispatch(gpu, {
    code: reduceWgsl(variant),
    dims: { length },
    views: { ...bound(vectors, length), ...bound(scalars, 1) },
    runs,
    workgroups: [1, 1, runs],
  });
}

/** Shapes of {@link dotKernel}. */
export interface DotSpec {
  runs: number;
  length: number;
  a: TensorView;
  /** May be `a` itself (squared norm) or have runStride 0 (every run against run 0). */
  b: TensorView;
  /** One f32 per run at `out.offset + r * out.runStride`, written (not accumulated). */
  out: TensorView;
}

/** out[r] = sum_i a[r][i] * b[r][i]; see the module's aliasing rule for `out`. */
export function dotKernel(gpu: Gpu, spec: DotSpec): Dispatch {
  const { runs, length, a, b, out } = spec;
  return reduceDispatch(gpu, "dot", runs, length, { a, b }, { out });
}

/** Shapes of {@link normalizedDistanceKernel}. */
export interface NormalizedDistanceSpec {
  runs: number;
  length: number;
  a: TensorView;
  b: TensorView;
  /** Per-run |a|^2 (one f32 per run), e.g. written by a {@link dotKernel} earlier in the pass. */
  aNorm2: TensorView;
  /** Per-run |b|^2; runStride 0 when b is run 0 for every run. */
  bNorm2: TensorView;
  out: TensorView;
}

/**
 * out[r] = sum_i (a[r][i]/sqrt(aNorm2[r]) - b[r][i]/sqrt(bNorm2[r]))^2 = |â - b̂|^2, so the angle
 * 2*asin(sqrt(out)/2) is precise near 0, where acos of an f32 cosine cannot resolve below ~3e-4.
 * A zero norm gives NaN. See the module's aliasing rule for `out`.
 */
export function normalizedDistanceKernel(gpu: Gpu, spec: NormalizedDistanceSpec): Dispatch {
  const { runs, length, a, b, aNorm2, bNorm2, out } = spec;
  return reduceDispatch(gpu, "distance", runs, length, { a, b }, {
    out,
    a_norm2: aNorm2,
    b_norm2: bNorm2,
  });
}

/** Column tile (x) and row lanes (y) of the column-sum workgroup. */
const COL_TILE = 16, ROW_LANES = 16;

const COLUMN_SUM = new KernelInterface("columnSum", {
  dims: ["rows", "cols"],
  slots: [{ name: "a" }, rw("out")],
});

/**
 * WGSL of the column sums: workgroup (x tile of columns, run z); ROW_LANES invocations per
 * column sum strided rows, then a tree over the lanes.
 */
export function columnSumWgsl(): string {
  return /* wgsl */ `${COLUMN_SUM.wgsl}
var<workgroup> lanes: array<array<f32, ${COL_TILE}>, ${ROW_LANES}>;

@compute @workgroup_size(${COL_TILE}, ${ROW_LANES})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let r = wid.z;
  let j = wid.x * ${COL_TILE}u + lid.x;
  var acc = 0.0;
  if (j < u.cols) {
    let base = at_a(r, j);
    for (var i = lid.y; i < u.rows; i += ${ROW_LANES}u) { acc += a[base + i * u.cols]; }
  }
  lanes[lid.y][lid.x] = acc;
  workgroupBarrier();
  for (var s = ${ROW_LANES / 2}u; s > 0u; s = s >> 1u) {
    if (lid.y < s) { lanes[lid.y][lid.x] = lanes[lid.y][lid.x] + lanes[lid.y + s][lid.x]; }
    workgroupBarrier();
  }
  if (lid.y == 0u && j < u.cols) {
    out[at_out(r, j)] = lanes[0][lid.x];
  }
}`;
}

/** Shapes of {@link columnSumKernel}. */
export interface ColumnSumSpec {
  runs: number;
  rows: number;
  cols: number;
  /** Run-stacked rows×cols matrices. */
  a: TensorView;
  /** Run-stacked cols-vectors, written (not accumulated). */
  out: TensorView;
}

/** out[r][j] = sum_i a[r][i*cols + j] (the bias gradient); see the module's aliasing rule. */
export function columnSumKernel(gpu: Gpu, spec: ColumnSumSpec): Dispatch {
  const { runs, rows, cols, a, out } = spec;
  return COLUMN_SUM.dispatch(gpu, {
    code: columnSumWgsl(),
    dims: { rows, cols },
    views: { a: { view: a, length: rows * cols }, out: { view: out, length: cols } },
    runs,
    workgroups: [ceilDiv(cols, COL_TILE), 1, runs],
  });
}
