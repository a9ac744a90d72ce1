/**
 * Angles between weight vectors, formed from sums a kernel reduces in one pass (the optimizer's
 * monitor, shaders/sgd.ts), and the angular update spherical motion predicts (THEORY §8).
 *
 * @module
 */

import type { RunStep } from "./runs.ts";

/** Angle from the squared distance of two unit vectors: 2 asin(|u - v| / 2), exact near 0. */
export function angleFromDistance2(d2: number): number {
  return 2 * Math.asin(Math.min(1, Math.sqrt(Math.max(0, d2)) / 2));
}

/**
 * The angle between vectors a and b from |a - b|², ⟨a - b, a + b⟩ = |a|² - |b|², |a|² and |b|²:
 * |â - b̂|² = (|a - b|² - (|a| - |b|)²)/(|a||b|), with |a| - |b| formed from the difference of
 * squares rather than from two square roots. Accurate to the sums' rounding relative to
 * (|a| - |b|)² + |a||b| θ², so the caller scales a and b to nearly equal norms.
 */
export function angleFromSums(diff2: number, diffSum: number, a2: number, b2: number): number {
  const a = Math.sqrt(a2), b = Math.sqrt(b2), dn = diffSum / (a + b);
  return angleFromDistance2((diff2 - dn * dn) / (a * b));
}

/**
 * The spherical-motion equilibrium angular update per step, sqrt(2 lr wd / (1 + momentum)),
 * with lr*wd the per-step shrink of the weights (THEORY §8's decoupled shrink counts as is).
 */
export function angularEquilibrium(step: RunStep): number {
  return Math.sqrt((2 * (step.lrS * step.wdS + step.shrinkS)) / (1 + step.momentum));
}
