/**
 * Preparing values for a logarithmic axis, which cannot show zero or negative numbers. Zeros
 * mean something here (A and B agree exactly), so a plot may draw them at a floor below every
 * positive value, and says so; negative values are dropped and counted.
 *
 * @module
 */

import type { Point } from "./bins.ts";

/** How zeros are shown on a log axis: at the floor, or not at all. */
export type ZeroPolicy = "clamp" | "drop";

/** Points ready for a log axis and what was done to get them. */
export interface LogPrepared {
  points: Point[];
  /** Zeros drawn at {@link LogPrepared.floor}. */
  clamped: number;
  /** Points left out: negative values (and zeros under the "drop" policy). */
  dropped: number;
}

/**
 * The floor at which zeros are drawn: a power of ten at least one decade below the smallest
 * positive value of every series on the plot and of `ceiling` (e.g. the lowest threshold line);
 * 1e-9 when neither exists.
 */
export function logFloor(minPositive: number, ceiling = Infinity): number {
  const below = Math.min(minPositive, ceiling);
  // Nothing positive and no ceiling: any floor will do; 1e-9 sits below float32's resolution.
  if (!Number.isFinite(below)) return 1e-9;
  return Number(`1e${Math.floor(Math.log10(below)) - 1}`);
}

/** The smallest positive value among `series` (Infinity when there is none). */
export function minPositive(series: readonly (readonly Point[])[]): number {
  let min = Infinity;
  for (const s of series) for (const p of s) if (p.value > 0 && p.value < min) min = p.value;
  return min;
}

/** `points` for a log axis: zeros at `floor` (or dropped), negatives dropped. */
export function prepareLog(
  points: readonly Point[],
  zeros: ZeroPolicy,
  floor: number,
): LogPrepared {
  const out: Point[] = [];
  let clamped = 0, dropped = 0;
  for (const p of points) {
    if (p.value > 0) out.push(p);
    else if (p.value === 0 && zeros === "clamp") {
      out.push({ step: p.step, value: floor });
      clamped++;
    } else dropped++;
  }
  return { points: out, clamped, dropped };
}
