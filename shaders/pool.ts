/**
 * Pooling over run-stacked NHWC activations (element (n, h, w, c) at ((n*H + h)*W + w)*C + c):
 * global average pool (N×H×W×C -> N×C) and 2×2 stride-2 max pool (N×H×W×C ->
 * N×floor(H/2)×floor(W/2)×C, odd trailing row/column ignored), forward and backward, all four
 * from the one template {@link poolWgsl}: a grid-stride loop over the output elements of each
 * run (run = workgroup_id.z) around a per-kind body, in every precision (`precision.ts`; max
 * pooling compares exactly, r_gt, so df64 picks the same argmax as float64). References:
 * `reference/pool.ts`.
 *
 * - average forward: one invocation per (n, c) sums its H*W values in blocks of SUM_BLOCK
 *   (partial sums, then their total), so the rounding error grows with H*W/SUM_BLOCK +
 *   SUM_BLOCK, not with H*W; neighbouring invocations read neighbouring channels, so loads
 *   coalesce;
 * - average backward: dx = dy[n, c] / (H*W), one invocation per dx element;
 * - max forward: y = x at the window's argmax;
 * - max backward: one invocation per window finds its argmax once and writes the window's dx,
 *   dy at the argmax and 0 elsewhere (the windows of the last row and column also clear an odd
 *   trailing row and column), so every element of dx is written and no clearing pass is needed;
 *   one invocation per dx element would find each window's argmax four times.
 *
 * The argmax is one WGSL function shared by both max-pool kernels and follows the reference's
 * tie rule exactly: the window is scanned (h, w), (h, w+1), (h+1, w), (h+1, w+1) and a later
 * candidate wins only when strictly greater, i.e. the FIRST maximum in row-major order.
 *
 * Every slot is `read_write`, so inputs and outputs may live in one buffer (at disjoint views).
 * Outputs are overwritten, never accumulated.
 *
 * Cost on lavapipe (2 shared cores, noisy), forward of 3 runs of 128×16×16×16: average df64
 * 19–20 ms against f32 5.6–8.6 ms, max df64 24–35 ms against 14–18 ms.
 *
 * @module
 */

import { assertCounts, ceilDiv, KernelInterface, MAX_GROUPS_PER_DIM } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";

/** Which of the four pooling kernels. */
export type PoolKind = "avgForward" | "avgBackward" | "maxForward" | "maxBackward";

/** The NHWC shape of a pooling layer's input, and the runs of one dispatch. */
export interface PoolShape {
  /** Arithmetic of the views' elements (default f32). */
  precision?: Precision;
  runs: number;
  /** Batch (N). */
  n: number;
  /** Height (H) of the input; >= 2 for max pooling. */
  h: number;
  /** Width (W) of the input; >= 2 for max pooling. */
  w: number;
  /** Channels (C). */
  c: number;
}

/** Global average pool forward: x (N×H×W×C) -> y (N×C), the mean over (h, w). */
export interface GlobalAvgPoolForwardSpec extends PoolShape {
  x: TensorView;
  y: TensorView;
}

/** Global average pool backward: dy (N×C) -> dx (N×H×W×C) = dy / (H*W) broadcast. */
export interface GlobalAvgPoolBackwardSpec extends PoolShape {
  dy: TensorView;
  dx: TensorView;
}

/** 2×2 stride-2 max pool forward: x (N×H×W×C) -> y (N×floor(H/2)×floor(W/2)×C). */
export interface MaxPool2ForwardSpec extends PoolShape {
  x: TensorView;
  y: TensorView;
}

/**
 * 2×2 stride-2 max pool backward: dy (N×floor(H/2)×floor(W/2)×C) and the forward's input x
 * (N×H×W×C) -> dx (N×H×W×C), every element written.
 */
export interface MaxPool2BackwardSpec extends PoolShape {
  dy: TensorView;
  x: TensorView;
  dx: TensorView;
}

/** Values summed into a partial before it joins the total: bounds rounding error growth. */
const SUM_BLOCK = 32;

/**
 * Invocations per workgroup. The average forward has few, long invocations (N*C of them, H*W
 * loads each): smaller workgroups spread them over more workgroups, hence more cores.
 */
const WORKGROUP: Record<PoolKind, number> = {
  avgForward: 64,
  avgBackward: 256,
  maxForward: 256,
  maxBackward: 256,
};

/** Cap on workgroups along x (grid-stride beyond it), as binding.ts's ELEMENTWISE_MAX_GROUPS. */
const MAX_GROUPS = 64;

const rw = (name: string) => ({ name, access: "read_write" as const });
const NAMES: Record<PoolKind, string> = {
  avgForward: "global avg pool forward",
  avgBackward: "global avg pool backward",
  maxForward: "max pool 2 forward",
  maxBackward: "max pool 2 backward",
};
const SLOTS: Record<PoolKind, string[]> = {
  avgForward: ["x", "y"],
  avgBackward: ["dy", "dx"],
  maxForward: ["x", "y"],
  maxBackward: ["dy", "x", "dx"],
};
function poolInterface(kind: PoolKind, precision: Precision): KernelInterface {
  return new KernelInterface(NAMES[kind], {
    precision,
    dims: ["count", "n", "h", "w", "c"],
    slots: SLOTS[kind].map(rw),
  });
}

/** Index (within run r's x) of the argmax of window (b, ho, wo) in channel j: first maximum. */
const ARGMAX_WGSL = /* wgsl */ `
fn window_argmax(r: u32, b: u32, ho: u32, wo: u32, j: u32) -> u32 {
  let base = ((b * u.h + 2u * ho) * u.w + 2u * wo) * u.c + j;
  let row = u.w * u.c;
  var arg = base;
  var best = x[at_x(r, base)];
  for (var k = 0u; k < 3u; k++) {
    let cand = base + select(0u, u.c, k != 1u) + select(0u, row, k != 0u);
    let v = x[at_x(r, cand)];
    if (r_gt(v, best)) {
      best = v;
      arg = cand;
    }
  }
  return arg;
}`;

/**
 * Per-kind body of the grid-stride loop over element `i` of run `r`: of the output, but of the
 * pooled windows for max backward.
 */
const BODY: Record<PoolKind, string> = {
  avgForward: `    let b = i / u.c;
    let j = i % u.c;
    let hw = u.h * u.w;
    let first = b * hw * u.c + j;
    var total = R();
    for (var p0 = 0u; p0 < hw; p0 += ${SUM_BLOCK}u) {
      var part = R();
      for (var p = p0; p < min(p0 + ${SUM_BLOCK}u, hw); p++) {
        part = r_add(part, x[at_x(r, first + p * u.c)]);
      }
      total = r_add(total, part);
    }
    y[at_y(r, i)] = r_div(total, r_f(f32(hw)));`,
  avgBackward: `    let b = i / (u.h * u.w * u.c);
    let j = i % u.c;
    dx[at_dx(r, i)] = r_div(dy[at_dy(r, b * u.c + j)], r_f(f32(u.h * u.w)));`,
  maxForward: `    let ho_n = u.h / 2u;
    let wo_n = u.w / 2u;
    let j = i % u.c;
    let t = i / u.c;
    let wo = t % wo_n;
    let ho = (t / wo_n) % ho_n;
    let b = t / (wo_n * ho_n);
    y[at_y(r, i)] = x[at_x(r, window_argmax(r, b, ho, wo, j))];`,
  maxBackward: `    let ho_n = u.h / 2u;
    let wo_n = u.w / 2u;
    let j = i % u.c;
    let t = i / u.c;
    let wo = t % wo_n;
    let ho = (t / wo_n) % ho_n;
    let b = t / (wo_n * ho_n);
    let g = dy[at_dy(r, i)];
    let arg = window_argmax(r, b, ho, wo, j);
    let base = ((b * u.h + 2u * ho) * u.w + 2u * wo) * u.c + j;
    // A window on the last row (column) also clears the odd trailing row (column) beside it.
    let rows = select(2u, 3u, ho + 1u == ho_n && u.h % 2u == 1u);
    let cols = select(2u, 3u, wo + 1u == wo_n && u.w % 2u == 1u);
    for (var dh = 0u; dh < rows; dh++) {
      for (var dw = 0u; dw < cols; dw++) {
        let k = base + (dh * u.w + dw) * u.c;
        dx[at_dx(r, k)] = select(R(), g, k == arg);
      }
    }`,
};

/** WGSL of one pooling kernel, from the one template. */
export function poolWgsl(kind: PoolKind, precision: Precision = "f32"): string {
  const wg = WORKGROUP[kind];
  const max = kind === "maxForward" || kind === "maxBackward";
  return /* wgsl */ `${poolInterface(kind, precision).wgsl}
${max ? ARGMAX_WGSL : ""}

@compute @workgroup_size(${wg})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let r = wid.z;
  for (var i = wid.x * ${wg}u + lid; i < u.count; i += groups.x * ${wg}u) {
${BODY[kind]}
  }
}
`;
}

function build(
  gpu: Gpu,
  kind: PoolKind,
  shape: PoolShape,
  views: Record<string, TensorView>,
): Dispatch {
  const { precision = "f32", runs, n, h, w, c } = shape;
  const min = kind === "maxForward" || kind === "maxBackward" ? 2 : 1;
  assertCounts(`pool ${kind}`, { runs, n, c });
  assertCounts(`pool ${kind}`, { h, w }, min);
  const input = n * h * w * c;
  const pooled = kind.startsWith("avg") ? n * c : n * Math.floor(h / 2) * Math.floor(w / 2) * c;
  // Elements per run of each slot; `count` is the number of invocations (elements or windows).
  const lengths: Record<string, number> = {
    avgForward: { x: input, y: pooled },
    avgBackward: { dy: pooled, dx: input },
    maxForward: { x: input, y: pooled },
    maxBackward: { dy: pooled, x: input, dx: input },
  }[kind];
  const count = kind === "avgBackward" ? input : pooled;
  if (input > 0xffffffff) throw new Error(`pool ${kind}: ${input} elements exceed u32 indexing`);
  const groups = Math.min(ceilDiv(count, WORKGROUP[kind]), MAX_GROUPS, MAX_GROUPS_PER_DIM);
  return poolInterface(kind, precision).dispatch(gpu, {
    code: poolWgsl(kind, precision),
    dims: { count, n, h, w, c },
    views: Object.fromEntries(
      Object.entries(views).map(([k, view]) => [k, { view, length: lengths[k] }]),
    ),
    runs,
    workgroups: [groups, 1, runs],
  });
}

/** Global average pool forward = reference `globalAvgPoolForward`, per run. */
export function globalAvgPoolForwardKernel(gpu: Gpu, spec: GlobalAvgPoolForwardSpec): Dispatch {
  return build(gpu, "avgForward", spec, { x: spec.x, y: spec.y });
}

/** Global average pool backward = reference `globalAvgPoolBackward`; dx is overwritten. */
export function globalAvgPoolBackwardKernel(gpu: Gpu, spec: GlobalAvgPoolBackwardSpec): Dispatch {
  return build(gpu, "avgBackward", spec, { dy: spec.dy, dx: spec.dx });
}

/** 2×2 stride-2 max pool forward = reference `maxPool2Forward`, per run. */
export function maxPool2ForwardKernel(gpu: Gpu, spec: MaxPool2ForwardSpec): Dispatch {
  return build(gpu, "maxForward", spec, { x: spec.x, y: spec.y });
}

/**
 * 2×2 stride-2 max pool backward = reference `maxPool2Backward` (same tie rule); every element
 * of dx is written (overwritten, not accumulated). dx must not share elements with x or dy.
 */
export function maxPool2BackwardKernel(gpu: Gpu, spec: MaxPool2BackwardSpec): Dispatch {
  return build(gpu, "maxBackward", spec, { dy: spec.dy, x: spec.x, dx: spec.dx });
}
