/**
 * Softmax cross-entropy over run-stacked logits [rows, classes] with labels shared by all runs:
 * writes dlogits = (softmax - onehot) / rows, the mean loss and the count of correct rows (first
 * maximum as argmax, as the reference). One workgroup per run; each thread takes rows
 * t, t + 256, ... and the per-thread loss and count are combined by a shared-memory tree, so
 * the loss sum is pairwise (float32 error ~log2(rows) ulps, not rows ulps).
 *
 * Accuracy details: the row's softmax denominator is 1 + rest, where rest sums exp(l - max)
 * over every class but the argmax, so log(1 + rest) is evaluated as a log1p (WGSL's `log` has
 * only an absolute error bound near 1, which would ruin a small loss of a confident row), and
 * the label's gradient p - 1 is formed as ((e - 1) - rest) / (1 + rest) without cancellation.
 *
 * The f32 bindings are `read_write` so logits and dlogits may share a buffer (in place included;
 * wgpu rejects a buffer bound both read-only and read-write in one dispatch); the labels are
 * read-only, so their buffer must not be one this dispatch writes.
 *
 * @module
 */

import { assertCounts, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";

const WORKGROUP = 256;

const rw = (name: string) => ({ name, access: "read_write" as const });
const SOFTMAX_XENT = new KernelInterface("softmax_xent", {
  dims: ["rows", "classes"],
  slots: [rw("logits"), { name: "labels", elem: "u32" }, rw("dlogits"), rw("stats")],
});

/** Inputs and outputs of {@link softmaxCrossEntropyKernel}. */
export interface SoftmaxCrossEntropySpec {
  runs: number;
  rows: number;
  classes: number;
  /** [rows, classes] per run. */
  logits: TensorView;
  /** u32 [rows] from element 0, shared by all runs; each label must be < classes. */
  labels: GPUBuffer;
  /** Gradient of the mean loss [rows, classes] per run; overwritten (may be the logits view). */
  dlogits: TensorView;
  /** Writes [offset + r*runStride + 0] = mean loss, [+1] = correct rows (as f32). */
  stats: TensorView;
}

/** WGSL of the softmax cross-entropy kernel (a single variant). */
export const SOFTMAX_XENT_WGSL: string = /* wgsl */ `${SOFTMAX_XENT.wgsl}

const WG: u32 = ${WORKGROUP}u;
var<workgroup> loss_part: array<f32, ${WORKGROUP}>;
var<workgroup> hit_part: array<u32, ${WORKGROUP}>;

// log(1 + a) for a >= 0. Below 1/16 a 7-term series (truncation < a * 3e-9, relative),
// since WGSL's log(x) near x = 1 is only accurate to an absolute 2^-21.
fn log1p_pos(a: f32) -> f32 {
  if (a < 0.0625) {
    return a * (1.0 - a * (1.0 / 2.0 - a * (1.0 / 3.0 - a * (1.0 / 4.0 - a * (1.0 / 5.0
      - a * (1.0 / 6.0 - a * (1.0 / 7.0)))))));
  }
  return log(1.0 + a);
}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let r = wid.z;
  let n = u.rows;
  let c = u.classes;
  let inv_rows = 1.0 / f32(n);
  var loss = 0.0;
  var hits = 0u;
  for (var i = t; i < n; i += WG) {
    let lb = at_logits(r, i * c);
    let db = at_dlogits(r, i * c);
    var mx = logits[lb];
    var arg = 0u;
    for (var k = 1u; k < c; k++) {
      let v = logits[lb + k];
      if (v > mx) { mx = v; arg = k; }
    }
    var rest = 0.0;
    for (var k = 0u; k < c; k++) {
      if (k != arg) { rest += exp(logits[lb + k] - mx); }
    }
    let label = labels[at_labels(r, i)];
    let denom = 1.0 + rest;
    loss += log1p_pos(rest) + (mx - logits[lb + label]);
    hits += select(0u, 1u, arg == label);
    // In place (dlogits = logits) is safe: the loss has read the label's logit already, and
    // element k is read just before it is overwritten.
    for (var k = 0u; k < c; k++) {
      let e = select(exp(logits[lb + k] - mx), 1.0, k == arg);
      let d = select(e, (e - 1.0) - rest, k == label);
      dlogits[db + k] = d / denom * inv_rows;
    }
  }
  loss_part[t] = loss;
  hit_part[t] = hits;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) {
      loss_part[t] += loss_part[t + s];
      hit_part[t] += hit_part[t + s];
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    let so = at_stats(r, 0u);
    stats[so] = loss_part[0] * inv_rows;
    stats[so + 1u] = f32(hit_part[0]);
  }
}
`;

/** Softmax cross-entropy = reference `softmaxCrossEntropy` (loss, correct, dlogits) per run. */
export function softmaxCrossEntropyKernel(gpu: Gpu, spec: SoftmaxCrossEntropySpec): Dispatch {
  const { runs, rows, classes } = spec;
  assertCounts("softmax_xent", { runs, rows, classes });
  return SOFTMAX_XENT.dispatch(gpu, {
    code: SOFTMAX_XENT_WGSL,
    dims: { rows, classes },
    views: {
      logits: { view: spec.logits, length: rows * classes },
      labels: { view: { buffer: spec.labels, offset: 0, runStride: 0 }, length: rows },
      dlogits: { view: spec.dlogits, length: rows * classes },
      stats: { view: spec.stats, length: 2 },
    },
    runs,
    workgroups: [1, 1, runs],
  });
}
