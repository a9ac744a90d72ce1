/**
 * Column sums (the bias gradient: a matrix's rows added per column, per run), from one template
 * in every precision (`precision.ts`). The per-run sums over group S (norms, dot products,
 * distances) are in `sums.ts`.
 *
 * Aliasing (WebGPU usage scopes): `a` is read-only, `out` is written; they must not share a
 * buffer.
 *
 * @module
 */

import { ceilDiv, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";

const rw = (name: string) => ({ name, access: "read_write" as const });

/** Column tile (x) and row lanes (y) of the column-sum workgroup. */
const COL_TILE = 16, ROW_LANES = 16;

const interfaces = new Map<Precision, KernelInterface>();

/** The (cached) column-sum interface of a precision. */
function columnSumInterface(precision: Precision): KernelInterface {
  let i = interfaces.get(precision);
  if (!i) {
    i = new KernelInterface("columnSum", {
      precision,
      dims: ["rows", "cols"],
      slots: [{ name: "a" }, rw("out")],
    });
    interfaces.set(precision, i);
  }
  return i;
}

/**
 * WGSL of the column sums: workgroup (x tile of columns, run z); ROW_LANES invocations per
 * column sum strided rows, then a tree over the lanes.
 */
export function columnSumWgsl(precision: Precision = "f32"): string {
  return /* wgsl */ `${columnSumInterface(precision).wgsl}
var<workgroup> lanes: array<array<R, ${COL_TILE}>, ${ROW_LANES}>;

@compute @workgroup_size(${COL_TILE}, ${ROW_LANES})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let r = wid.z;
  let j = wid.x * ${COL_TILE}u + lid.x;
  var acc = R();
  if (j < u.cols) {
    let base = at_a(r, j);
    for (var i = lid.y; i < u.rows; i += ${ROW_LANES}u) { acc = r_add(acc, a[base + i * u.cols]); }
  }
  lanes[lid.y][lid.x] = acc;
  workgroupBarrier();
  for (var s = ${ROW_LANES / 2}u; s > 0u; s = s >> 1u) {
    if (lid.y < s) { lanes[lid.y][lid.x] = r_add(lanes[lid.y][lid.x], lanes[lid.y + s][lid.x]); }
    workgroupBarrier();
  }
  if (lid.y == 0u && j < u.cols) {
    out[at_out(r, j)] = lanes[0][lid.x];
  }
}`;
}

/** Shapes of {@link columnSumKernel}. */
export interface ColumnSumSpec {
  /** Arithmetic of the views' elements (default f32). */
  precision?: Precision;
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
  const { precision = "f32", runs, rows, cols, a, out } = spec;
  return columnSumInterface(precision).dispatch(gpu, {
    code: columnSumWgsl(precision),
    dims: { rows, cols },
    views: { a: { view: a, length: rows * cols }, out: { view: out, length: cols } },
    runs,
    workgroups: [ceilDiv(cols, COL_TILE), 1, runs],
  });
}
