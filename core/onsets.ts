/**
 * The onset rule of a distance between two runs: the first step at which it exceeds each
 * threshold, with its largest and last value. The trainer's summary (stages/monitor.ts) and the
 * report's onsets from rows (report/onsets.ts) both fold with {@link foldOnset}, so they agree.
 *
 * @module
 */

/** Thresholds at which the summary records the first step a distance passes. */
export const ONSET_THRESHOLDS = [1e-6, 1e-4, 1e-2] as const;

/** The thresholds as the summary names them ("1e-6", "1e-4", "1e-2"), in the same order. */
export const ONSET_KEYS: readonly string[] = ONSET_THRESHOLDS.map((t) => t.toExponential(0));

/** One distance's onsets: first step above each threshold (null: never), largest and last value. */
export interface Onsets {
  above: Record<string, number | null>;
  /** The largest finite value; null before the first. */
  max: number | null;
  /** The last value; null when it was not finite (or before the first). */
  final: number | null;
}

/** No threshold passed yet: every key of {@link ONSET_KEYS} at null. */
export function noOnsets(): Record<string, number | null> {
  return Object.fromEntries(ONSET_KEYS.map((k) => [k, null]));
}

/**
 * Folds the distance `d` measured at `step` into `o`, in place. A value that is not finite
 * (a diverged run) passes no threshold and does not raise the maximum: it is no distance.
 */
export function foldOnset(o: Onsets, step: number, d: number): void {
  o.final = Number.isFinite(d) ? d : null;
  if (!Number.isFinite(d)) return;
  if (o.max === null || d > o.max) o.max = d;
  ONSET_THRESHOLDS.forEach((t, i) => {
    const key = ONSET_KEYS[i];
    if (o.above[key] === null && d > t) o.above[key] = step;
  });
}
