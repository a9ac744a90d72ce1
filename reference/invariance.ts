/**
 * The startup check that group S is right (THEORY §1): in float64, the logits with every S
 * tensor scaled by the same factor equal the logits without, BatchNorm eps 0.
 *
 * @module
 */

import type { ModelLayout } from "../core/graph.ts";
import { forward } from "./trainer.ts";

/** Throws unless doubling all of S leaves the training-mode logits of `x` unchanged. */
export function checkScaleInvariance(
  layout: ModelLayout,
  params: ArrayLike<number>,
  x: ArrayLike<number>,
  rows: number,
): void {
  const w = Float64Array.from({ length: layout.size }, (_, i) => params[i]);
  const base = forward(layout, w, x, rows, 0);
  for (let i = 0; i < layout.sEnd; i++) w[i] *= 2;
  const doubled = forward(layout, w, x, rows, 0);
  let err = 0, norm = 0;
  for (let i = 0; i < base.length; i++) {
    err = Math.max(err, Math.abs(doubled[i] - base[i]));
    norm = Math.max(norm, Math.abs(base[i]));
  }
  if (!(err <= 1e-9 * Math.max(1, norm))) {
    throw new Error(`scale-invariance check failed: doubling group S changed the logits by ${err}`);
  }
}
