/**
 * The equivalence monitor: turns each metered step's raw GPU metrics into named columns
 * (THEORY §7 distances of every run against A, norm ratios beside the predicted c_t, effective
 * learning rates, angular updates) and keeps the run's summary (onset steps, maxima).
 *
 * @module
 */

import type { RunName, RunStep } from "../core/runs.ts";
import type { MetricsLayout } from "./trainer.ts";
import type { StepOutput, StepRecord, TrainingSnapshot } from "./step.ts";
import { PROBE_STATS } from "../shaders/probe_distance.ts";

/**
 * What the monitor hands on: a line of output (a step's metrics, or an event: a Lemma-2
 * rescale), or a snapshot to checkpoint with the summary's state at that point.
 */
export type OutputRow =
  | { kind: "step"; values: Record<string, number | undefined> }
  | { kind: "event"; step: number; epoch: number; event: string; run: RunName; factor: number }
  | { kind: "snapshot"; snapshot: TrainingSnapshot; tracker: TrackerState };

/** What the monitor needs to know about the run set. */
export interface MonitorOptions {
  runs: RunName[];
  layout: MetricsLayout;
  /** S tensors (the per-layer columns L0, L1, ...: group S in layout order). */
  sTensors: number;
  probeRows: number;
  perLayer: boolean;
}

const PER_RUN = [
  "loss",
  "acc",
  "lr",
  "wnorm",
  "eff_lr",
  "angular_update",
  "angular_pred",
  "grad_cos",
  "probe_acc",
  "eval_acc",
] as const;
const PER_PAIR = [
  "batch_maxprob",
  "batch_rel_l2",
  "batch_agree",
  "batch_kl",
  "dist_maxprob",
  "dist_rel_l2",
  "dist_agree",
  "dist_kl",
  "norm_ratio",
  "c_pred",
  "angle",
  "eval_maxprob",
  "eval_rel_l2",
  "eval_agree",
  "eval_kl",
] as const;

/**
 * The output columns in order: step, epoch; each per-run metric for every run (A.loss, B.loss,
 * ...); with per-layer, each run's per-layer effective lr; then every run's distances against A
 * (B.dist_maxprob, B.norm_ratio, B.c_pred, ...); finally `event` (filled on event rows only).
 */
export function monitorColumns(opts: MonitorOptions): string[] {
  const cols = ["step", "epoch"];
  for (const m of PER_RUN) for (const r of opts.runs) cols.push(`${r}.${m}`);
  if (opts.perLayer) {
    for (const r of opts.runs) {
      for (let l = 0; l < opts.sTensors; l++) cols.push(`${r}.eff_lr.L${l}`);
    }
  }
  for (const r of opts.runs.slice(1)) for (const m of PER_PAIR) cols.push(`${r}.${m}`);
  cols.push("event");
  return cols;
}

/** Angle from the squared distance of two unit vectors: 2 asin(|u - v| / 2), exact near 0. */
function angleFromDistance2(d2: number): number {
  return 2 * Math.asin(Math.min(1, Math.sqrt(Math.max(0, d2)) / 2));
}

/**
 * The spherical-motion equilibrium angular update per step, sqrt(2 lr wd / (1 + momentum)),
 * with lr*wd the per-step shrink of the weights (THEORY §8's decoupled shrink counts as is).
 * Run B (no weight decay) is judged against A's prediction, since it mimics A; run C has none.
 */
export function angularEquilibrium(step: RunStep): number {
  return Math.sqrt((2 * (step.lrS * step.wdS + step.shrinkS)) / (1 + step.momentum));
}

/** Derives one output row's values from a step record. */
export function deriveRow(
  rec: StepRecord,
  opts: MonitorOptions,
): Record<string, number | undefined> {
  const { layout: L, runs } = opts;
  const v: Record<string, number | undefined> = { step: rec.step, epoch: rec.epoch };
  const at = (r: number, word: number) => rec.metrics[r * L.words + word];
  const aPlan = rec.plan[0];
  runs.forEach((name, r) => {
    const p = rec.plan[r];
    const before = at(r, L.norm2Before);
    v[`${name}.loss`] = at(r, L.loss);
    v[`${name}.acc`] = at(r, L.correct) / rec.rows;
    v[`${name}.lr`] = p.lrS;
    v[`${name}.wnorm`] = Math.sqrt(at(r, L.norm2));
    v[`${name}.eff_lr`] = p.lrS / before;
    v[`${name}.angular_update`] = angleFromDistance2(at(r, L.distPrev));
    v[`${name}.angular_pred`] = angularEquilibrium(name === "B" ? aPlan : p);
    v[`${name}.grad_cos`] = at(r, L.gradDotW) / Math.sqrt(at(r, L.gradNorm2) * before);
    v[`${name}.probe_acc`] = rec.probe
      ? at(r, L.probe + PROBE_STATS.correct) / opts.probeRows
      : undefined;
    v[`${name}.eval_acc`] = rec.evalMode
      ? at(r, L.evalProbe + PROBE_STATS.correct) / opts.probeRows
      : undefined;
    if (opts.perLayer) {
      for (let l = 0; l < opts.sTensors; l++) {
        v[`${name}.eff_lr.L${l}`] = p.lrS / at(r, L.layerNorm2Before + l);
      }
    }
    if (r === 0) return;
    const dist = (base: number, prefix: string, rows: number) => {
      v[`${name}.${prefix}_maxprob`] = at(r, base + PROBE_STATS.maxProb);
      v[`${name}.${prefix}_rel_l2`] = Math.sqrt(
        at(r, base + PROBE_STATS.diff2) / at(r, base + PROBE_STATS.norm2),
      );
      v[`${name}.${prefix}_agree`] = at(r, base + PROBE_STATS.agree) / rows;
      v[`${name}.${prefix}_kl`] = at(r, base + PROBE_STATS.kl) / rows;
    };
    dist(L.batch, "batch", rec.rows);
    if (rec.probe) dist(L.probe, "dist", opts.probeRows);
    if (rec.evalMode) dist(L.evalProbe, "eval", opts.probeRows);
    v[`${name}.norm_ratio`] = Math.sqrt(at(r, L.norm2) / at(0, L.norm2));
    v[`${name}.c_pred`] = Number.isNaN(p.cPred) ? undefined : p.cPred;
    v[`${name}.angle`] = angleFromDistance2(at(r, L.distA));
  });
  return v;
}

/** Thresholds at which the summary records the first step a distance passes. */
export const ONSET_THRESHOLDS = [1e-6, 1e-4, 1e-2] as const;

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
    const never = () => Object.fromEntries(ONSET_THRESHOLDS.map((t) => [t.toExponential(0), null]));
    for (const r of runs.slice(1)) {
      this.pairs[r] = {
        max_dist_maxprob: 0,
        final_dist_maxprob: NaN,
        first_step_above: never(),
        max_batch_maxprob: 0,
        final_batch_maxprob: NaN,
        batch_first_step_above: never(),
      };
    }
  }

  /** Folds in one step's values. */
  add(v: Record<string, number | undefined>): void {
    this.steps = (v.step ?? 0) + 1;
    const fold = (
      d: number | undefined,
      max: "max_dist_maxprob" | "max_batch_maxprob",
      final: "final_dist_maxprob" | "final_batch_maxprob",
      onsets: Record<string, number | null>,
      pair: PairSummary,
    ) => {
      if (d === undefined) return; // not measured at this step
      pair[max] = Math.max(pair[max], d);
      pair[final] = d;
      for (const t of ONSET_THRESHOLDS) {
        const key = t.toExponential(0);
        if (onsets[key] === null && d > t) onsets[key] = v.step!;
      }
    };
    for (const r of this.runs.slice(1)) {
      const pair = this.pairs[r];
      fold(
        v[`${r}.dist_maxprob`],
        "max_dist_maxprob",
        "final_dist_maxprob",
        pair.first_step_above,
        pair,
      );
      fold(
        v[`${r}.batch_maxprob`],
        "max_batch_maxprob",
        "final_batch_maxprob",
        pair.batch_first_step_above,
        pair,
      );
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
  opts: MonitorOptions,
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
