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

import {
  bindBuffers,
  type Dispatch,
  type Gpu,
  type TensorView,
  uniformBuffer,
} from "./gpu.ts";

const WORKGROUP = 256;

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
export const SOFTMAX_XENT_WGSL: string = /* wgsl */ `
struct Shape {
  rows: u32, classes: u32,
  logits_off: u32, logits_stride: u32,
  dlogits_off: u32, dlogits_stride: u32,
  stats_off: u32, stats_stride: u32,
}
@group(0) @binding(0) var<uniform> u: Shape;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

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
    let lb = u.logits_off + r * u.logits_stride + i * c;
    let db = u.dlogits_off + r * u.dlogits_stride + i * c;
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
    let label = labels[i];
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
    let so = u.stats_off + r * u.stats_stride;
    stats[so] = loss_part[0] * inv_rows;
    stats[so + 1u] = f32(hit_part[0]);
  }
}
`;

/** Softmax cross-entropy = reference `softmaxCrossEntropy` (loss, correct, dlogits) per run. */
export function softmaxCrossEntropyKernel(gpu: Gpu, spec: SoftmaxCrossEntropySpec): Dispatch {
  const { runs, rows, classes } = spec;
  for (const [name, n] of [["runs", runs], ["rows", rows], ["classes", classes]] as const) {
    if (!Number.isInteger(n) || n < 1) {
      throw new Error(`softmax_xent: ${name} must be >= 1, got ${n}`);
    }
  }
  const { logits: l, dlogits: d, stats: s } = spec;
  const words = Uint32Array.of(
    rows,
    classes,
    l.offset,
    l.runStride,
    d.offset,
    d.runStride,
    s.offset,
    s.runStride,
  );
  const pipeline = gpu.pipeline(SOFTMAX_XENT_WGSL);
  const uniform = uniformBuffer(gpu, words, "softmax_xent shape");
  const bindGroup = bindBuffers(gpu, pipeline, [
    uniform,
    l.buffer,
    spec.labels,
    d.buffer,
    s.buffer,
  ]);
  return { pipeline, bindGroup, workgroups: [1, 1, runs] };
}
