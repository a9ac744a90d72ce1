/**
 * The equivalence monitor: turns each metered step's record into an output row (the columns of
 * `columns.ts`: THEORY §7 distances of every run against A, norm ratios beside the predicted
 * c_t, effective learning rates, angular updates) and keeps the run's summary (onset steps,
 * maxima).
 *
 * @module
 */

import { foldOnset, noOnsets, type Onsets } from "../core/onsets.ts";
import type { RunName } from "../core/runs.ts";
import { deriveRow, type RowOptions } from "./columns.ts";
import type { StepOutput, TrainingSnapshot } from "./step.ts";

/**
 * What the monitor hands on: a line of output (a step's metrics, or an event: a Lemma-2
 * rescale), or a snapshot to checkpoint with the summary's state at that point.
 */
export type OutputRow =
  | { kind: "step"; values: Record<string, number | undefined> }
  | { kind: "event"; step: number; epoch: number; event: string; run: RunName; factor: number }
  | { kind: "snapshot"; snapshot: TrainingSnapshot; tracker: TrackerState };

/**
 * Per pair (A against each other run): the largest distance and the onset steps, of max
 * |Δsoftmax| on the probe (`X.dist_maxprob`, steps where the probe ran) and on the training
 * batch (`X.batch_maxprob`, every metered step).
 */
export interface PairSummary {
  max_dist_maxprob: number;
  final_dist_maxprob: number;
  /** First probe step at which `X.dist_maxprob` exceeded each threshold (null: never). */
  first_step_above: Record<string, number | null>;
  max_batch_maxprob: number;
  final_batch_maxprob: number;
  /** First metered step at which `X.batch_maxprob` exceeded each threshold (null: never). */
  batch_first_step_above: Record<string, number | null>;
}

/** A {@link SummaryTracker}'s state (checkpoints). */
export interface TrackerState {
  pairs: Record<string, PairSummary>;
  last: Record<string, number | undefined>;
  /** The step at which each of `last`'s values was measured (absent in older checkpoints). */
  at?: Record<string, number>;
  steps: number;
  rescales: number;
}

/**
 * Folds one distance of a pair, `d` at `step` (undefined: not measured at this step), by the
 * one onset rule (core/onsets.ts); the summary keeps its flat field names for its readers.
 */
function foldPair(pair: PairSummary, on: "dist" | "batch", step: number, d?: number): void {
  if (d === undefined) return;
  const max = `max_${on}_maxprob` as const, final = `final_${on}_maxprob` as const;
  const above = on === "dist" ? pair.first_step_above : pair.batch_first_step_above;
  const o: Onsets = { above, max: pair[max], final: null };
  foldOnset(o, step, d);
  pair[max] = o.max!;
  pair[final] = o.final ?? NaN;
}

/** Accumulates the run's summary from the rows the monitor derives. */
export class SummaryTracker {
  readonly pairs: Record<string, PairSummary> = {};
  readonly last: Record<string, number | undefined> = {};
  /** The step of each value in `last`. */
  readonly at: Record<string, number> = {};
  steps = 0;
  /** Lemma-2 rescales applied so far. */
  rescales = 0;

  constructor(private readonly runs: RunName[]) {
    for (const r of runs.slice(1)) {
      this.pairs[r] = {
        max_dist_maxprob: 0,
        final_dist_maxprob: NaN,
        first_step_above: noOnsets(),
        max_batch_maxprob: 0,
        final_batch_maxprob: NaN,
        batch_first_step_above: noOnsets(),
      };
    }
  }

  /** Folds in one step's values. */
  add(v: Record<string, number | undefined>): void {
    this.steps = (v.step ?? 0) + 1;
    for (const r of this.runs.slice(1)) {
      foldPair(this.pairs[r], "dist", v.step!, v[`${r}.dist_maxprob`]);
      foldPair(this.pairs[r], "batch", v.step!, v[`${r}.batch_maxprob`]);
    }
    // The last measured value of each column (the probe's cells are empty between probes).
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) continue;
      this.last[k] = x;
      this.at[k] = this.steps - 1;
    }
  }

  /** A deep copy of the state. */
  get state(): TrackerState {
    return structuredClone({
      pairs: this.pairs,
      last: this.last,
      at: this.at,
      steps: this.steps,
      rescales: this.rescales,
    });
  }

  /** Continues from `state` (a tracker of the same runs). */
  restore(state: TrackerState): void {
    const copy = structuredClone(state);
    Object.assign(this.pairs, copy.pairs);
    Object.assign(this.last, copy.last);
    Object.assign(this.at, copy.at ?? {});
    this.steps = copy.steps;
    this.rescales = copy.rescales;
  }
}

/**
 * The monitor stage: each step record becomes its rescale event rows (if any) and one step row;
 * every step row is folded into `tracker` and passed to `onStep` (progress reporting). A
 * snapshot passes on with the tracker's state.
 */
export function monitorStage(
  opts: RowOptions,
  tracker: SummaryTracker,
  onStep: (values: Record<string, number | undefined>) => void = () => {},
): TransformStream<StepOutput, OutputRow> {
  return new TransformStream<StepOutput, OutputRow>({
    transform(rec, controller) {
      if (rec.kind === "snapshot") {
        controller.enqueue({ kind: "snapshot", snapshot: rec, tracker: tracker.state });
        return;
      }
      for (const e of rec.rescales) {
        tracker.rescales++;
        controller.enqueue({ kind: "event", event: "rescale", ...e });
      }
      const values = deriveRow(rec, opts);
      tracker.add(values);
      onStep(values);
      controller.enqueue({ kind: "step", values });
    },
  });
}
