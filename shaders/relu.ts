/**
 * ReLU forward (y = max(x, 0)) and backward from the forward's output (dx = dy where y > 0),
 * elementwise over `count` elements per run, from one template in every precision (exact in
 * each: it only selects). The flat element index is
 * folded over workgroup_id.x/y; the run is workgroup_id.z. Bindings are `read_write` so any two
 * views may share a buffer (in place included).
 *
 * @module
 */

import { assertCounts, foldedGrid, foldedMain, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";

const WORKGROUP = 256;

/** Forward: (x) -> y. Backward: (dy, y) -> dx. */
export type ReluDirection = "forward" | "backward";

/** ReLU forward: y = max(x, 0) over `count` elements per run (x and y may be the same view). */
export interface ReluForwardSpec {
  /** Arithmetic of the views' elements (default f32). */
  precision?: Precision;
  runs: number;
  /** Elements per run. */
  count: number;
  x: TensorView;
  y: TensorView;
}

/** ReLU backward: dx = dy where y > 0 else 0 (dx may be the same view as dy). */
export interface ReluBackwardSpec {
  precision?: Precision;
  runs: number;
  count: number;
  dy: TensorView;
  /** The forward's output. */
  y: TensorView;
  dx: TensorView;
}

const rw = (name: string) => ({ name, access: "read_write" as const });
function reluInterface(direction: ReluDirection, precision: Precision): KernelInterface {
  return new KernelInterface(`relu ${direction}`, {
    precision,
    dims: ["count"],
    slots: direction === "forward" ? [rw("x"), rw("y")] : [rw("dy"), rw("y"), rw("dx")],
  });
}

/** WGSL of the ReLU forward or backward, from one template. */
export function reluWgsl(direction: ReluDirection, precision: Precision = "f32"): string {
  // `select` (not max) so a NaN input gives 0 exactly as the reference's `v > 0 ? v : 0`; the
  // sign of a df64 pair is its hi's.
  const body = direction === "forward"
    ? `  let v = x[at_x(r, i)];
  y[at_y(r, i)] = select(R(), v, r_hi(v) > 0.0);`
    : `  let g = dy[at_dy(r, i)];
  dx[at_dx(r, i)] = select(R(), g, r_hi(y[at_y(r, i)]) > 0.0);`;
  return `${reluInterface(direction, precision).wgsl}

${foldedMain(WORKGROUP, body)}`;
}

function build(
  gpu: Gpu,
  direction: ReluDirection,
  spec: { precision?: Precision; runs: number; count: number },
  views: Record<string, TensorView>,
): Dispatch {
  const { precision = "f32", runs, count } = spec;
  assertCounts(`relu ${direction}`, { runs, count });
  return reluInterface(direction, precision).dispatch(gpu, {
    code: reluWgsl(direction, precision),
    dims: { count },
    views: Object.fromEntries(
      Object.entries(views).map(([k, view]) => [k, { view, length: count }]),
    ),
    runs,
    workgroups: foldedGrid(count, runs, WORKGROUP),
  });
}

/** ReLU forward = reference `reluForward`, per run. */
export function reluForwardKernel(gpu: Gpu, spec: ReluForwardSpec): Dispatch {
  return build(gpu, "forward", spec, { x: spec.x, y: spec.y });
}

/** ReLU backward = reference `reluBackward`, per run; dx is overwritten, not accumulated. */
export function reluBackwardKernel(gpu: Gpu, spec: ReluBackwardSpec): Dispatch {
  return build(gpu, "backward", spec, { dy: spec.dy, y: spec.y, dx: spec.dx });
}
