/**
 * The summary's onset rule, computed from rows: the first metered step at which a distance
 * exceeds each threshold, with its largest and last value (as `stages/monitor.ts` records them).
 *
 * @module
 */

import { ONSET_THRESHOLDS } from "../stages/monitor.ts";

/** The onset thresholds as the summary names them ("1e-6", "1e-4", "1e-2"). */
export const THRESHOLD_KEYS: readonly string[] = ONSET_THRESHOLDS.map((t) => t.toExponential(0));

/** The thresholds' values, in the order of {@link THRESHOLD_KEYS}. */
export const THRESHOLDS: readonly number[] = [...ONSET_THRESHOLDS];

/** One distance's onsets: first step above each threshold (null: never), largest and last value. */
export interface Onsets {
  above: Record<string, number | null>;
  max: number | null;
  final: number | null;
}

/** Folds a distance's values, step by step, into its {@link Onsets}. */
export class OnsetTracker {
  readonly #above: Record<string, number | null> = Object.fromEntries(
    THRESHOLD_KEYS.map((k) => [k, null]),
  );
  #max: number | null = null;
  #final: number | null = null;
  /** Whether any value was added. */
  seen = false;

  /** Adds the distance `d` measured at `step` (NaN passes no threshold, as in the trainer). */
  add(step: number, d: number): void {
    this.seen = true;
    this.#final = Number.isFinite(d) ? d : null;
    if (!Number.isFinite(d)) return;
    if (this.#max === null || d > this.#max) this.#max = d;
    THRESHOLDS.forEach((t, i) => {
      const key = THRESHOLD_KEYS[i];
      if (this.#above[key] === null && d > t) this.#above[key] = step;
    });
  }

  /** The onsets so far. */
  get result(): Onsets {
    return { above: { ...this.#above }, max: this.#max, final: this.#final };
  }
}
