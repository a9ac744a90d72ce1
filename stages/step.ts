/**
 * The step stage: a TransformStream from mini-batches to metered step records. It asks the run
 * plan for every run's values, submits the step to the GPU, keeps up to `inFlight` metered
 * steps in flight, and hands on each step's metrics in order once they are read back.
 *
 * It also decides Lemma-2 rescales (THEORY §4) from every step's S weight norms: a norm read
 * after step t's update rescales the run before step t + {@link RESCALE_LAG}, a fixed lag, so
 * the trajectory does not depend on how many steps are in flight, on `--every`, or on where a
 * run was checkpointed and resumed. It stops on a non-finite loss or norm (divergence), or when
 * asked to (a signal), and emits a {@link TrainingSnapshot} at checkpoint steps, at the end and
 * when it stops for a signal.
 *
 * @module
 */

import type { Batch } from "./data/loader.ts";
import type { PlanState, RunName, RunPlan, RunStep } from "../core/runs.ts";
import type { GpuTrainer, TrainerState } from "./trainer.ts";
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
  /** runs × layout.words reals read back from the GPU (float64 unless the trainer is f32). */
  metrics: Reals;
  /** Whether the probe (training mode) was evaluated at this step. */
  probe: boolean;
  /** Whether the eval-mode probe was evaluated at this step. */
  evalMode: boolean;
  /** Lemma-2 rescales applied since the previous metered step (each before its step). */
  rescales: { step: number; epoch: number; run: RunName; factor: number }[];
}

/** A rescale decided from the norms of an earlier step, applied before step `at`. */
export interface ScheduledRescale {
  run: number;
  at: number;
  factor: number;
}

/** The step stage's own state between steps (the rest is the plan's and the GPU's). */
export interface StepperState {
  /** Decided rescales not yet applied. */
  scheduled: ScheduledRescale[];
  /**
   * Per run, the step before which its latest rescale is (or was) applied, -1 for none: the
   * norms of earlier steps still show the old scale and decide nothing.
   */
  rescaleAt: number[];
  /** The first step at or after which a metered step evaluates the probe. */
  nextProbe: number;
  /** The first step at or after which a metered step evaluates the eval-mode probe. */
  nextEval: number;
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

/** Steps between the step whose norms decide a rescale and the step it is applied before. */
export const RESCALE_LAG = 3;

/** How the step stage meters, rescales and snapshots. */
export interface StepStageOptions {
  runs: RunName[];
  /** Meter (read back) every N-th step, starting with step 0, and the last step. */
  every: number;
  /** Steps of the whole run (the last one is always metered). */
  totalSteps: number;
  /** Evaluate the probe every this many steps, on metered steps, and at the last step. */
  probeEvery: number;
  /** Also evaluate the eval-mode probe every this many steps, on metered steps (0 = never). */
  evalEvery: number;
  inFlight: number;
  /** Rescale a run when its S weight norm passes this. */
  rescaleAbove: number;
  /** Snapshot after every this many steps (0 = only at the end and when stopped). */
  checkpointEvery: number;
  /** Snapshot at the end of the run and when a signal stops it. */
  snapshots: boolean;
  /** Stop requests and divergence, shared with the loader and the command line. */
  control: RunControl;
  /** The state of a resumed run (the plan and the trainer are restored by their owners). */
  resume?: StepperState;
}

/**
 * The Lemma-2 factor for a run whose S weight norm is `norm`: 1 while `norm` <= `threshold`,
 * else the power of two that brings the norm into (threshold/4, threshold/2], so the rescale is
 * exact in floating point and the next one is at least a doubling away.
 */
export function rescaleFactor(norm: number, threshold: number): number {
  return norm > threshold ? 2 ** -(Math.ceil(Math.log2(norm / threshold)) + 1) : 1;
}

/** Builds the step stage over `trainer` and `plan`. */
export function stepStage(
  trainer: GpuTrainer,
  plan: RunPlan,
  opts: StepStageOptions,
): TransformStream<Batch, StepOutput> {
  const { control } = opts;
  const metered: { record: Omit<StepRecord, "metrics">; metrics: Promise<Reals> }[] = [];
  const normsQueue: { step: number; norms: Promise<number[]> }[] = [];
  const scheduled = [...(opts.resume?.scheduled ?? [])];
  const rescaleAt = [...(opts.resume?.rescaleAt ?? opts.runs.map(() => -1))];
  let nextEval = opts.resume?.nextEval ?? 0;
  let nextProbe = opts.resume?.nextProbe ?? 0;
  let rescales: StepRecord["rescales"] = [];
  let last: { step: number; epoch: number; lastPlan: RunStep[] } | undefined;
  let snapshotAt = -1;
  const words = trainer.metrics.words;

  let divergedAt = Infinity;
  const diverge = (step: number, run: number, what: string, value: number) => {
    if (step >= divergedAt) return;
    divergedAt = step;
    control.diverged = `training diverged at step ${step}: run ${
      opts.runs[run]
    } has ${what} ${value}`;
  };

  /** Decides the rescales of step t's norms; they apply before step t + RESCALE_LAG. */
  const decide = (step: number, norms: number[]) => {
    norms.forEach((norm, r) => {
      if (!Number.isFinite(norm)) return diverge(step, r, "S weight norm", norm);
      // Run A is the reference of every ratio: never rescaled (weight decay bounds its norm).
      if (r === 0 || step < rescaleAt[r]) return;
      const factor = rescaleFactor(norm, opts.rescaleAbove);
      if (factor === 1) return;
      rescaleAt[r] = step + RESCALE_LAG;
      scheduled.push({ run: r, at: rescaleAt[r], factor });
    });
  };
  const decideUpTo = async (step: number) => {
    while (normsQueue.length > 0 && normsQueue[0].step <= step) {
      const { step: t, norms } = normsQueue.shift()!;
      decide(t, await norms);
    }
  };

  const emit = async (controller: TransformStreamDefaultController<StepOutput>) => {
    const { record, metrics } = metered.shift()!;
    const m = await metrics;
    // Rows after a divergence are not shown: the one that diverged is the last.
    if (record.step > divergedAt) return;
    opts.runs.forEach((_, r) => {
      const loss = m[r * words + trainer.metrics.loss];
      if (!Number.isFinite(loss)) diverge(record.step, r, "loss", loss);
    });
    controller.enqueue({ ...record, metrics: m });
  };

  /** A snapshot after the last step submitted; after a divergence only the final one. */
  const snapshot = async (
    controller: TransformStreamDefaultController<StepOutput>,
    final: boolean,
  ) => {
    if (!last || snapshotAt === last.step || (control.diverged && !final)) return;
    await decideUpTo(last.step);
    while (metered.length > 0) await emit(controller);
    if (control.diverged && !final) return;
    snapshotAt = last.step;
    controller.enqueue({
      kind: "snapshot",
      step: last.step,
      epoch: last.epoch,
      lastPlan: last.lastPlan,
      gpu: await trainer.readState(),
      plan: plan.state,
      stepper: {
        scheduled: scheduled.map((s) => ({ ...s })),
        rescaleAt: [...rescaleAt],
        nextProbe,
        nextEval,
      },
      diverged: control.diverged !== undefined,
    });
  };

  return new TransformStream<Batch, StepOutput>({
    async transform(batch, controller) {
      if (control.stopping) return; // prefetched batches after a stop are not trained
      await decideUpTo(batch.step - RESCALE_LAG);
      if (control.stopping) return;
      for (const s of scheduled.filter((s) => s.at === batch.step)) {
        plan.requestRescale(s.run, s.factor);
      }
      scheduled.splice(0, scheduled.length, ...scheduled.filter((s) => s.at > batch.step));
      const steps = plan.next();
      steps.forEach((s, r) => {
        if (s.rescale === 1) return;
        rescales.push({
          step: batch.step,
          epoch: batch.epoch,
          run: opts.runs[r],
          factor: s.rescale,
        });
      });
      const lastStep = batch.step === opts.totalSteps - 1;
      const meter = batch.step % opts.every === 0 || lastStep;
      // The probe and eval mode at the first metered step at or after each multiple of their
      // period; the probe at the last step too.
      const probe = meter && (batch.step >= nextProbe || lastStep);
      if (probe) nextProbe = (Math.floor(batch.step / opts.probeEvery) + 1) * opts.probeEvery;
      const evalMode = meter && opts.evalEvery > 0 && batch.step >= nextEval;
      if (evalMode) nextEval = (Math.floor(batch.step / opts.evalEvery) + 1) * opts.evalEvery;
      const { metrics, norms } = await trainer.submitStep(
        batch.x,
        batch.y,
        batch.size,
        steps,
        { meter, probe, evalMode },
      );
      last = { step: batch.step, epoch: batch.epoch, lastPlan: steps };
      normsQueue.push({ step: batch.step, norms });
      if (metrics) {
        metered.push({
          record: {
            kind: "step",
            step: batch.step,
            epoch: batch.epoch,
            rows: batch.size,
            plan: steps,
            probe,
            evalMode,
            rescales,
          },
          metrics,
        });
        rescales = [];
      }
      while (metered.length > opts.inFlight) await emit(controller);
      const done = batch.step + 1;
      if (opts.checkpointEvery > 0 && done % opts.checkpointEvery === 0) {
        await snapshot(controller, false);
      }
    },
    async flush(controller) {
      await decideUpTo(Infinity);
      while (metered.length > 0) await emit(controller);
      if (opts.snapshots) await snapshot(controller, true);
    },
  });
}
