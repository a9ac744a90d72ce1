/**
 * The summary's onsets computed from rows: the first metered step at which a distance exceeds
 * each threshold, with its largest and last value, by the trainer's own rule (core/onsets.ts).
 *
 * @module
 */

import { foldOnset, noOnsets, type Onsets } from "../core/onsets.ts";

/** Folds a distance's values, step by step, into its {@link Onsets}. */
export class OnsetTracker {
  readonly #onsets: Onsets = { above: noOnsets(), max: null, final: null };
  /** Whether any value was added. */
  seen = false;

  /** Adds the distance `d` measured at `step` (NaN passes no threshold, as in the trainer). */
  add(step: number, d: number): void {
    this.seen = true;
    foldOnset(this.#onsets, step, d);
  }

  /** The onsets so far. */
  get result(): Onsets {
    return { ...this.#onsets, above: { ...this.#onsets.above } };
  }
}
