/**
 * The step stage: a TransformStream from mini-batches to metered step records. The
 * {@link StepPolicy} decides what each step does; this stage only submits it with the run plan's
 * values, feeds back what was read, keeps up to `inFlight` metered steps in flight, and emits
 * the records in order, with a {@link TrainingSnapshot} at checkpoint steps, at the end and
 * when a signal stops it.
 *
 * @module
 */

import type { Batch } from "./data/loader.ts";
import type { PlanState, RunName, RunPlan, RunStep } from "../core/runs.ts";
import { type StepperState, StepPolicy, type StepPolicyOptions } from "../core/step_policy.ts";
import type { GpuTrainer } from "./trainer.ts";
import type { TrainerState } from "./state.ts";
import type { Reals } from "../shaders/precision.ts";

/** One metered step as the step stage hands it on. */
export interface StepRecord {
  kind: "step";
  step: number;
  epoch: number;
  /** Rows of the training batch. */
  rows: number;
  /** The plan's values of every run at this step. */
  plan: RunStep[];
  /** runs × record.words reals read back from the GPU (float64 unless the trainer is f32). */
  metrics: Reals;
  /** Whether the probe (training mode) was evaluated at this step. */
  probe: boolean;
  /** Whether the eval-mode probe was evaluated at this step. */
  evalMode: boolean;
  /** Lemma-2 rescales applied since the previous metered step (each before its step). */
  rescales: { step: number; epoch: number; run: RunName; factor: number }[];
}

/** Everything needed to continue after `step`: what a checkpoint holds. */
export interface TrainingSnapshot {
  kind: "snapshot";
  /** The last step done (the resumed run continues with step + 1). */
  step: number;
  epoch: number;
  gpu: TrainerState;
  plan: PlanState;
  /** The plan's values of every run at `step`. */
  lastPlan: RunStep[];
  stepper: StepperState;
  /** The state at a divergence (for inspection, never resumed). */
  diverged: boolean;
}

/** What the step stage hands on: metered steps, and snapshots between them. */
export type StepOutput = StepRecord | TrainingSnapshot;

/**
 * Why a run stops before its last step, shared by the loader, the step stage, the sink and the
 * command line: a signal asked for it, a run diverged (the message names the run, step and
 * value), or the reader of stdout went away.
 */
export class RunControl {
  signal?: "SIGINT" | "SIGTERM";
  diverged?: string;
  /** The reader of stdout went away (`| head`). */
  outputClosed = false;

  /** True once the run should take no further step. */
  get stopping(): boolean {
    return this.signal !== undefined || this.diverged !== undefined || this.outputClosed;
  }
}

/** How the step stage meters, rescales and snapshots: the policy's flags, and these. */
export interface StepStageOptions extends StepPolicyOptions {
  runs: RunName[];
  /** Metered steps kept in flight on the GPU before the oldest is read back. */
  inFlight: number;
  /** Snapshot at the end of the run and when a signal stops it. */
  snapshots: boolean;
  /** Stop requests and divergence, shared with the loader and the command line. */
  control: RunControl;
}

/** Builds the step stage over `trainer` and `plan`. */
export function stepStage(
  trainer: GpuTrainer,
  plan: RunPlan,
  opts: StepStageOptions,
): TransformStream<Batch, StepOutput> {
  return new TransformStream<Batch, StepOutput>(new Stepper(trainer, plan, opts));
}

/**
 * Every run's training loss in a metered step's read-back metrics: the one place that knows where
 * the metrics record keeps it.
 */
function lossesOf(trainer: GpuTrainer, metrics: Reals, runs: number): number[] {
  const at = trainer.record.reader(metrics);
  return Array.from({ length: runs }, (_, r) => at(r, "loss"));
}

type Out = TransformStreamDefaultController<StepOutput>;

/** The step stage's transformer: submits what the policy decides and emits in step order. */
class Stepper implements Transformer<Batch, StepOutput> {
  readonly #policy: StepPolicy;
  readonly #metered: { record: Omit<StepRecord, "metrics">; metrics: Promise<Reals> }[] = [];
  /** Norms read back but not yet fed to the policy (fed in step order, as late as it allows). */
  readonly #norms: { step: number; norms: Promise<number[]> }[] = [];
  #rescales: StepRecord["rescales"] = [];
  #last?: { step: number; epoch: number; lastPlan: RunStep[] };
  #snapshotAt = -1;

  constructor(
    readonly trainer: GpuTrainer,
    readonly plan: RunPlan,
    readonly opts: StepStageOptions,
  ) {
    this.#policy = new StepPolicy(opts);
  }

  async transform(batch: Batch, out: Out): Promise<void> {
    const { control } = this.opts;
    if (control.stopping) return; // prefetched batches after a stop are not trained
    await this.#feedNorms(this.#policy.normsDueBefore(batch.step));
    if (control.stopping) return;
    const decision = this.#policy.plan(batch.step);
    for (const s of decision.rescales) this.plan.requestRescale(s.run, s.factor);
    const steps = this.plan.next();
    steps.forEach((s, r) => {
      if (s.rescale === 1) return;
      const run = this.opts.runs[r];
      this.#rescales.push({ step: batch.step, epoch: batch.epoch, run, factor: s.rescale });
    });
    const { x, y, step, epoch, size: rows } = batch, { meter, probe, evalMode } = decision;
    const read = await this.trainer.submitStep(x, y, rows, steps, { meter, probe, evalMode });
    this.#last = { step, epoch, lastPlan: steps };
    this.#norms.push({ step, norms: read.norms });
    if (read.metrics) {
      const record = { kind: "step" as const, step, epoch, rows, plan: steps, probe, evalMode };
      this.#metered.push({
        record: { ...record, rescales: this.#rescales },
        metrics: read.metrics,
      });
      this.#rescales = [];
    }
    while (this.#metered.length > this.opts.inFlight) await this.#emit(out);
    if (decision.checkpoint) await this.#snapshot(out, false);
  }

  async flush(out: Out): Promise<void> {
    await this.#feedNorms(Infinity);
    while (this.#metered.length > 0) await this.#emit(out);
    if (this.opts.snapshots) await this.#snapshot(out, true);
  }

  /** Feeds the policy the norms of every step up to `step`, in order. */
  async #feedNorms(step: number): Promise<void> {
    while (this.#norms.length > 0 && this.#norms[0].step <= step) {
      const { step: t, norms } = this.#norms.shift()!;
      this.#policy.norms(t, await norms);
      this.#syncDivergence();
    }
  }

  /** Hands on the oldest metered step once read back; rows after a divergence are not shown. */
  async #emit(out: Out): Promise<void> {
    const { record, metrics } = this.#metered.shift()!;
    const m = await metrics;
    if (!this.#policy.shows(record.step)) return;
    this.#policy.losses(record.step, lossesOf(this.trainer, m, this.opts.runs.length));
    this.#syncDivergence();
    out.enqueue({ ...record, metrics: m });
  }

  /** The policy's divergence, for the loader and the command line (an earlier step wins). */
  #syncDivergence(): void {
    if (this.#policy.diverged !== undefined) this.opts.control.diverged = this.#policy.diverged;
  }

  /** A snapshot after the last step submitted; after a divergence only the final one. */
  async #snapshot(out: Out, final: boolean): Promise<void> {
    const { control } = this.opts, last = this.#last;
    if (!last || this.#snapshotAt === last.step || (control.diverged && !final)) return;
    await this.#feedNorms(last.step);
    while (this.#metered.length > 0) await this.#emit(out);
    if (control.diverged && !final) return;
    this.#snapshotAt = last.step;
    out.enqueue({
      kind: "snapshot",
      ...last,
      gpu: await this.trainer.readState(),
      plan: this.plan.state,
      stepper: this.#policy.state,
      diverged: control.diverged !== undefined,
    });
  }
}
