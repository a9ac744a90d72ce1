/**
 * Float64 reference of the function-space distances of THEORY §7, between run A's logits and
 * another run's logits on the same probe batch. The GPU monitor kernel
 * (`shaders/probe_distance.ts`) is tested against it.
 *
 * @module
 */

import type { Vec } from "./ops.ts";

/** Distances between two runs' predictions on one probe batch. */
export interface ProbeDistance {
  /** max over rows and classes of |softmax_A - softmax_R|. */
  maxProb: number;
  /** ||logits_R - logits_A|| / ||logits_A|| (Frobenius over the batch). */
  relL2: number;
  /** Fraction of rows whose argmax (first maximum) agrees. */
  agree: number;
  /** Mean over rows of KL(softmax_A || softmax_R). */
  kl: number;
  /** Fraction of rows whose run-R argmax equals the label (run R's probe accuracy). */
  accuracy: number;
}

/** Softmax, log-softmax (stable, so KL stays finite) and argmax of one row. */
function softmaxRow(
  l: Vec,
  row: number,
  classes: number,
): { p: Float64Array; logp: Float64Array; arg: number } {
  let max = -Infinity, arg = 0;
  for (let c = 0; c < classes; c++) {
    const v = l[row * classes + c];
    if (v > max) (max = v), (arg = c);
  }
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += Math.exp(l[row * classes + c] - max);
  const logp = Float64Array.from(
    { length: classes },
    (_, c) => l[row * classes + c] - max - Math.log(sum),
  );
  return { p: logp.map(Math.exp), logp, arg };
}

/** Computes {@link ProbeDistance} of run R's logits against run A's, both rows×classes. */
export function probeDistance(
  logitsA: Vec,
  logitsR: Vec,
  labels: ArrayLike<number>,
  rows: number,
  classes: number,
): ProbeDistance {
  let maxProb = 0, diff2 = 0, norm2 = 0, agree = 0, kl = 0, correct = 0;
  for (let i = 0; i < rows; i++) {
    const a = softmaxRow(logitsA, i, classes), r = softmaxRow(logitsR, i, classes);
    if (a.arg === r.arg) agree++;
    if (r.arg === labels[i]) correct++;
    for (let c = 0; c < classes; c++) {
      const k = i * classes + c;
      maxProb = Math.max(maxProb, Math.abs(a.p[c] - r.p[c]));
      diff2 += (logitsR[k] - logitsA[k]) ** 2;
      norm2 += logitsA[k] ** 2;
      kl += a.p[c] * (a.logp[c] - r.logp[c]);
    }
  }
  return {
    maxProb,
    relL2: Math.sqrt(diff2 / norm2),
    agree: agree / rows,
    kl: kl / rows,
    accuracy: correct / rows,
  };
}
