/**
 * The startup check that group S is right (THEORY §1): in float64, the logits with every S
 * tensor scaled by the same factor equal the logits without, normalization eps 0.
 *
 * @module
 */

import type { ModelLayout } from "../core/graph.ts";
import { forward } from "./trainer.ts";

/** Relative change of the logits the check tolerates (float64 rounding of a deep network). */
export const INVARIANCE_TOLERANCE = 1e-9;

/** How far doubling S moves the training-mode logits of `x`. */
export interface InvarianceMeasure {
  /** Largest absolute change of a logit. */
  error: number;
  /** The scale it is judged against: max(1, largest |logit|). */
  scale: number;
  passed: boolean;
}

/** Measures how much doubling all of S changes the training-mode logits of `x` (eps 0). */
export function measureScaleInvariance(
  layout: ModelLayout,
  params: ArrayLike<number>,
  x: ArrayLike<number>,
  rows: number,
): InvarianceMeasure {
  const w = Float64Array.from({ length: layout.size }, (_, i) => params[i]);
  const base = forward(layout, w, x, rows, 0);
  for (let i = 0; i < layout.sEnd; i++) w[i] *= 2;
  const doubled = forward(layout, w, x, rows, 0);
  let error = 0, scale = 1;
  for (let i = 0; i < base.length; i++) {
    error = Math.max(error, Math.abs(doubled[i] - base[i]));
    scale = Math.max(scale, Math.abs(base[i]));
  }
  return { error, scale, passed: error <= INVARIANCE_TOLERANCE * scale };
}

/** Throws unless doubling all of S leaves the training-mode logits of `x` unchanged. */
export function checkScaleInvariance(
  layout: ModelLayout,
  params: ArrayLike<number>,
  x: ArrayLike<number>,
  rows: number,
): void {
  const { error, passed } = measureScaleInvariance(layout, params, x, rows);
  if (!passed) {
    throw new Error(
      `scale-invariance check failed: doubling group S changed the logits by ${error}`,
    );
  }
}
