/**
 * Softmax cross-entropy over run-stacked logits [rows, classes] with labels shared by all runs:
 * writes dlogits = (softmax - onehot) / rows, the mean loss and the count of correct rows (first
 * maximum as argmax, as the reference; compared exactly, r_gt, in every precision). One
 * workgroup per run; each thread takes rows t, t + 256, ... and the per-thread loss and count
 * are combined by a shared-memory tree, so the loss sum is pairwise (error ~log2(rows)
 * roundings, not rows). One template in every precision (`precision.ts`): logits, dlogits and
 * the stats are reals.
 *
 * Accuracy details: the row's softmax denominator is 1 + rest, where rest sums exp(l - max)
 * over every class but the argmax, so log(1 + rest) is evaluated as a log1p (1 + rest rounded
 * would lose rest's low bits, the whole of a confident row's small loss), and the label's
 * gradient p - 1 is formed as ((e - 1) - rest) / (1 + rest) without cancellation. float32's
 * log1p is a series below 1/16 (WGSL's `log` has only an absolute error bound near 1); df64's
 * and f64's are log(u) · a / (u - 1) with u = 1 + a, r_log being relatively accurate near 1.
 *
 * The real bindings are `read_write` so logits and dlogits may share a buffer (in place
 * included; wgpu rejects a buffer bound both read-only and read-write in one dispatch); the
 * labels are read-only, so their buffer must not be one this dispatch writes.
 *
 * Cost on lavapipe (2 shared cores, noisy): 256×10 logits, R=3: df64 2.7–4.5 ms, f32 1.3–1.6 ms.
 *
 * @module
 */

import { assertCounts, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";

/** The per-run stats the kernel writes, in order: the mean loss, the count of correct rows. */
export const LOSS_TERMS = ["loss", "correct"] as const;

const WORKGROUP = 256;

const rw = (name: string) => ({ name, access: "read_write" as const });
function softmaxXentInterface(precision: Precision): KernelInterface {
  return new KernelInterface("softmax_xent", {
    precision,
    dims: ["rows", "classes"],
    slots: [rw("logits"), { name: "labels", elem: "u32" }, rw("dlogits"), rw("stats")],
  });
}

/** Inputs and outputs of {@link softmaxCrossEntropyKernel}. */
export interface SoftmaxCrossEntropySpec {
  /** Arithmetic of logits, dlogits and stats (default f32). */
  precision?: Precision;
  runs: number;
  rows: number;
  classes: number;
  /** [rows, classes] per run. */
  logits: TensorView;
  /** u32 [rows] from element 0, shared by all runs; each label must be < classes. */
  labels: GPUBuffer;
  /** Gradient of the mean loss [rows, classes] per run; overwritten (may be the logits view). */
  dlogits: TensorView;
  /** Reals: writes [offset + r*runStride + 0] = mean loss, [+1] = correct rows (exact count). */
  stats: TensorView;
}

/**
 * `fn log1p_pos(a: R) -> R`, log(1 + a) for a >= 0, the one per-precision piece of the kernel.
 * float32: below 1/16 a 7-term series (truncation < a * 3e-9, relative), since WGSL's log(x)
 * near x = 1 is only accurate to an absolute 2^-21. df64 and f64: log(u) · a / (u - 1) with
 * u = 1 + a rounded (Goldberg's log1p): u - 1 is exact and log(u) / (u - 1) varies slowly, so
 * the rounding of a into u cancels out; it needs a log relatively accurate near 1, which r_log
 * is (df64.ts), and a series to the df64 precision would take twice the terms.
 */
function log1pWgsl(precision: Precision): string {
  if (precision === "f32") {
    return /* wgsl */ `fn log1p_pos(a: R) -> R {
  if (a < 0.0625) {
    return a * (1.0 - a * (1.0 / 2.0 - a * (1.0 / 3.0 - a * (1.0 / 4.0 - a * (1.0 / 5.0
      - a * (1.0 / 6.0 - a * (1.0 / 7.0)))))));
  }
  return log(1.0 + a);
}`;
  }
  return /* wgsl */ `fn log1p_pos(a: R) -> R {
  let u = r_add(r_f(1.0), a);
  let d = r_sub(u, r_f(1.0));
  // u = 1 only for an a too small to matter (df64: a = 0): log1p(a) = a to its precision.
  if (r_hi(d) == 0.0) { return a; }
  return r_mul(r_log(u), r_div(a, d));
}`;
}

/** WGSL of the softmax cross-entropy kernel (one variant per precision). */
export function softmaxXentWgsl(precision: Precision = "f32"): string {
  return /* wgsl */ `${softmaxXentInterface(precision).wgsl}

const WG: u32 = ${WORKGROUP}u;
var<workgroup> loss_part: array<R, ${WORKGROUP}>;
var<workgroup> hit_part: array<u32, ${WORKGROUP}>;

${log1pWgsl(precision)}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let r = wid.z;
  let n = u.rows;
  let c = u.classes;
  let one = r_f(1.0);
  let inv_rows = r_div(one, r_f(f32(n)));
  var loss = R();
  var hits = 0u;
  for (var i = t; i < n; i += WG) {
    let lb = at_logits(r, i * c);
    let db = at_dlogits(r, i * c);
    var mx = logits[lb];
    var arg = 0u;
    for (var k = 1u; k < c; k++) {
      let v = logits[lb + k];
      if (r_gt(v, mx)) { mx = v; arg = k; }
    }
    var rest = R();
    for (var k = 0u; k < c; k++) {
      if (k != arg) { rest = r_add(rest, r_exp(r_sub(logits[lb + k], mx))); }
    }
    let label = labels[at_labels(r, i)];
    let denom = r_add(one, rest);
    loss = r_add(loss, r_add(log1p_pos(rest), r_sub(mx, logits[lb + label])));
    hits += select(0u, 1u, arg == label);
    // In place (dlogits = logits) is safe: the loss has read the label's logit already, and
    // element k is read just before it is overwritten.
    for (var k = 0u; k < c; k++) {
      let e = select(r_exp(r_sub(logits[lb + k], mx)), one, k == arg);
      let d = select(e, r_sub(r_sub(e, one), rest), k == label);
      dlogits[db + k] = r_mul(r_div(d, denom), inv_rows);
    }
  }
  loss_part[t] = loss;
  hit_part[t] = hits;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) {
      loss_part[t] = r_add(loss_part[t], loss_part[t + s]);
      hit_part[t] += hit_part[t + s];
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    let so = at_stats(r, 0u);
    stats[so] = r_mul(loss_part[0], inv_rows);
    stats[so + 1u] = r_f(f32(hit_part[0]));
  }
}
`;
}

/** Softmax cross-entropy = reference `softmaxCrossEntropy` (loss, correct, dlogits) per run. */
export function softmaxCrossEntropyKernel(gpu: Gpu, spec: SoftmaxCrossEntropySpec): Dispatch {
  const { precision = "f32", runs, rows, classes } = spec;
  assertCounts("softmax_xent", { runs, rows, classes });
  return softmaxXentInterface(precision).dispatch(gpu, {
    code: softmaxXentWgsl(precision),
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
