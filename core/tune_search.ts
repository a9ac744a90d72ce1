/**
 * The autotuner's search over a kernel's tilings: a deterministic hill climb from the
 * hand-picked default, one parameter at a time, under a time budget.
 *
 * - Local, not exhaustive: tiling spaces are products of several parameters, and a budget of a
 *   few seconds per kernel measures tens of variants, not thousands; neighbouring tilings tend
 *   to have neighbouring times, so walking downhill finds the good region quickly.
 * - Measurements are noisy, so a variant must beat the best by more than a margin to replace it
 *   (the default is kept unless clearly beaten), and a variant whose one-repetition quick trial
 *   is already far slower is dropped without the full measurement.
 * - The measure function and the clock are injected: the search does no I/O and holds no GPU
 *   handle, and its result is a pure function of the measurements and clock readings, so every
 *   path of the walk is tested on the CPU with scripted times.
 *
 * @module
 */

/** A kernel's variant space as the search walks it. */
export interface TuneSpace<T> {
  /** The hand-picked default: measured first, and kept unless beaten by more than the margin. */
  start: T;
  /**
   * Other designs' defaults (e.g. another algorithm for the same product), each climbed from in
   * turn after the start's climb: a design's good region may lie beyond a neighbour of another's.
   */
  starts?: T[];
  /** Variants one step from `t` (one parameter changed), in a fixed order. */
  neighbours(t: T): T[];
  /** A stable identity of a variant (equal variants, equal keys). */
  key(t: T): string;
}

/**
 * One measurement: the median milliseconds of `reps` timed repetitions, or why the variant is
 * not eligible (did not compile, failed verification against the float64 reference).
 */
export type Trial = { ms: number } | { rejected: string };

/** How the search measures, when it stops, and how it compares. */
export interface SearchOptions<T> {
  /** Measures `t` with `reps` timed repetitions. */
  measure(t: T, reps: number): Promise<Trial>;
  /** The clock, in milliseconds. */
  now(): number;
  /**
   * No new variant is started once `now() - start >= budgetMs`, `start` being the clock read as
   * the search begins (the default is always measured, and counts against the budget).
   */
  budgetMs: number;
  /** Repetitions of a full measurement (default 5). */
  reps?: number;
  /** A variant replaces the best only if faster by more than this fraction (default 0.03). */
  margin?: number;
  /**
   * After a 1-repetition quick trial, a variant slower than `best * prune` is dropped unmeasured
   * (default 1.25).
   */
  prune?: number;
}

/** One variant the search tried. */
export interface SearchTrial {
  /** The variant's {@link TuneSpace.key}. */
  key: string;
  /** Fully measured, dropped after its quick trial, or not eligible. */
  outcome: "measured" | "pruned" | "rejected";
  /** The full measurement's time (measured), or the quick trial's (pruned). */
  ms?: number;
  /** Why the variant was rejected. */
  why?: string;
}

/** What the search found. */
export interface SearchResult<T> {
  /** The fastest eligible variant (the default unless beaten by more than the margin). */
  best: T;
  /** `best`'s full measurement. */
  bestMs: number;
  /** The default's full measurement. */
  defaultMs: number;
  /** Every variant tried, in order: its key and outcome (the default first). */
  trials: SearchTrial[];
  /** Whether the climb reached a variant no neighbour beats, or ran out of time first. */
  stoppedBy: "converged" | "budget";
}

/** The defaults of {@link SearchOptions}. */
export const SEARCH_DEFAULTS: { reps: number; margin: number; prune: number } = {
  reps: 5,
  margin: 0.03,
  prune: 1.25,
};

/**
 * Hill-climbs `space` from its start, then from each of its other `starts`. The start is
 * measured with full repetitions (a rejected start throws: the default must always be correct).
 * A climb from a point: for each untried neighbour of the climb's best in order: stop if the
 * budget is spent; a quick 1-repetition trial; a rejected variant is recorded, one slower than
 * the climb's best times `prune` is pruned, any other gets the full measurement and becomes the
 * climb's best if faster than its best by more than `margin` (the rest of the frontier is then
 * compared against it). A frontier that improved the climb's best is followed by the untried
 * neighbours of the new best; one that did not ends the climb. Another start is measured in
 * full (a rejected one is recorded and skipped) and climbed from alike. The result's best is the
 * start's climb's, replaced by another climb's only when faster by more than `margin`. No key is
 * measured twice. A time that is negative or not finite counts as a rejection.
 */
export async function searchTilings<T>(
  space: TuneSpace<T>,
  opts: SearchOptions<T>,
): Promise<SearchResult<T>> {
  const reps = opts.reps ?? SEARCH_DEFAULTS.reps;
  const margin = opts.margin ?? SEARCH_DEFAULTS.margin;
  const prune = opts.prune ?? SEARCH_DEFAULTS.prune;
  if (!(Number.isInteger(reps) && reps >= 1 && margin >= 0 && margin < 1 && prune > 0)) {
    throw new RangeError(
      `searchTilings: needs an integer reps >= 1, 0 <= margin < 1, prune > 0 (got ${reps}, ${margin}, ${prune})`,
    );
  }
  if (!(opts.budgetMs >= 0)) {
    throw new RangeError(`searchTilings: needs budgetMs >= 0 (got ${opts.budgetMs})`);
  }
  const started = opts.now();
  const trials: SearchTrial[] = [];
  const tried = new Set<string>();
  let budgetSpent = false;

  /** The full measurement of a point not tried yet, recorded; undefined if rejected. */
  const measureFully = async (t: T): Promise<number | undefined> => {
    const key = space.key(t);
    tried.add(key);
    const m = checked(await opts.measure(t, reps));
    if ("rejected" in m) {
      trials.push({ key, outcome: "rejected", why: m.rejected });
      return undefined;
    }
    trials.push({ key, outcome: "measured", ms: m.ms });
    return m.ms;
  };

  /** The best point a climb from `from` (measured: `fromMs`) reaches within the budget. */
  const climb = async (from: T, fromMs: number): Promise<[T, number]> => {
    let best = from, bestMs = fromMs;
    for (;;) {
      let improved = false;
      for (const c of space.neighbours(best)) {
        const key = space.key(c);
        if (tried.has(key)) continue;
        if (opts.now() - started >= opts.budgetMs) {
          budgetSpent = true;
          return [best, bestMs];
        }
        tried.add(key);
        const quick = checked(await opts.measure(c, 1));
        if ("rejected" in quick) {
          trials.push({ key, outcome: "rejected", why: quick.rejected });
          continue;
        }
        if (quick.ms > bestMs * prune) {
          trials.push({ key, outcome: "pruned", ms: quick.ms });
          continue;
        }
        const ms = await measureFully(c);
        if (ms !== undefined && ms < bestMs * (1 - margin)) {
          (best = c), (bestMs = ms), (improved = true);
        }
      }
      if (!improved) return [best, bestMs];
    }
  };

  const startKey = space.key(space.start);
  const defaultMs = await measureFully(space.start);
  if (defaultMs === undefined) {
    const why = trials[0].why;
    throw new Error(`tuning: the default tiling ${startKey} is not eligible: ${why}`);
  }
  let [best, bestMs] = await climb(space.start, defaultMs);
  for (const s of space.starts ?? []) {
    if (budgetSpent || opts.now() - started >= opts.budgetMs) {
      budgetSpent = true;
      break;
    }
    if (tried.has(space.key(s))) continue;
    const sMs = await measureFully(s);
    if (sMs === undefined) continue;
    const [b, ms] = await climb(s, sMs);
    if (ms < bestMs * (1 - margin)) (best = b), (bestMs = ms);
  }
  return { best, bestMs, defaultMs, trials, stoppedBy: budgetSpent ? "budget" : "converged" };
}

/** `trial`, with a negative or non-finite time turned into a rejection (it cannot be compared). */
function checked(trial: Trial): Trial {
  if ("rejected" in trial) return trial;
  return Number.isFinite(trial.ms) && trial.ms >= 0
    ? trial
    : { rejected: `measured ${trial.ms} ms, not a time` };
}

/**
 * Splits `budgetMs` over instances in proportion to `weights` (e.g. each default's time × how
 * often it runs), each getting at least `minMs` where the total allows: instances whose share
 * would fall below `minMs` get `minMs`, the others share the rest in exact proportion. When
 * `budgetMs` cannot give every instance `minMs`, or every weight is 0, all get equal shares.
 * The shares sum to at most `budgetMs`; weights, budget and minimum must be finite and >= 0.
 */
export function splitBudget(weights: number[], budgetMs: number, minMs: number): number[] {
  const ok = (v: number) => Number.isFinite(v) && v >= 0;
  if (!weights.every(ok) || !ok(budgetMs) || !ok(minMs)) {
    throw new RangeError(
      `splitBudget: weights, budget and minimum must be finite and >= 0 (got [${weights}], ${budgetMs}, ${minMs})`,
    );
  }
  const n = weights.length;
  if (n === 0) return [];
  const total = weights.reduce((s, w) => s + w, 0);
  const shares = total === 0 || n * minMs >= budgetMs
    ? weights.map(() => budgetMs / n)
    : waterFill(weights, budgetMs, minMs);
  // Rounding can leave the sum an ulp or two over the budget: take that off the largest share.
  for (let round = 0; round < 8; round++) {
    const over = shares.reduce((s, v) => s + v, 0) - budgetMs;
    if (over <= 0) break;
    const i = shares.indexOf(Math.max(...shares));
    shares[i] = Math.max(0, shares[i] - over);
  }
  return shares;
}

/**
 * Shares of `budgetMs` in proportion to `weights`, lifted to `minMs` where they fall below it;
 * needs a positive total weight and `budgetMs > weights.length * minMs`.
 */
function waterFill(weights: number[], budgetMs: number, minMs: number): number[] {
  const n = weights.length;
  // Water filling: clamp to minMs those whose proportional share of what is left falls below
  // it, until none more do. The clamped set only grows, so this ends within n rounds, and some
  // weight stays unclamped (else the budget would be under n * minMs).
  const clamped = weights.map(() => false);
  let scale = 0;
  for (let changed = true; changed;) {
    changed = false;
    let free = budgetMs, weight = 0;
    for (let i = 0; i < n; i++) {
      if (clamped[i]) free -= minMs;
      else weight += weights[i];
    }
    scale = free / weight;
    for (let i = 0; i < n; i++) {
      if (!clamped[i] && weights[i] * scale < minMs) (clamped[i] = true), (changed = true);
    }
  }
  return weights.map((w, i) => (clamped[i] ? minMs : w * scale));
}
