/**
 * The step stage: a TransformStream from mini-batches to metered step records. It asks the run
 * plan for every run's values, submits the step to the GPU, keeps up to `inFlight` metered
 * steps in flight, and hands on each step's metrics in order once they are read back. It also
 * decides Lemma-2 rescales (THEORY §4) from the norms it reads back and stops on NaN.
 *
 * @module
 */

import type { Batch } from "./data/loader.ts";
import type { RunName, RunPlan } from "../core/runs.ts";
import type { GpuTrainer } from "./trainer.ts";
import type { StepRecord } from "./monitor.ts";

/** Thrown when a loss or a weight norm becomes NaN or infinite. */
export class TrainingDivergedError extends Error {}

/** How the step stage meters and rescales. */
export interface StepStageOptions {
  runs: RunName[];
  /** Meter (read back) every N-th step, starting with step 0, and the last step. */
  every: number;
  /** Steps of the whole run (the last one is always metered). */
  totalSteps: number;
  /** Also evaluate the eval-mode probe every this many steps, on metered steps (0 = never). */
  evalEvery: number;
  inFlight: number;
  /** Rescale a run when its S weight norm passes this. */
  rescaleAbove: number;
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
): TransformStream<Batch, StepRecord> {
  const pending: { record: Omit<StepRecord, "metrics">; metrics: Promise<Float32Array> }[] = [];
  // A rescale requested from step t's norms lands a few steps later; until it has been applied,
  // the norms of steps already in flight still show the old scale and must not trigger again.
  const rescaleAppliedAt = opts.runs.map(() => -1);
  const requested = opts.runs.map(() => false);
  let rescales: StepRecord["rescales"] = [];
  let nextEval = 0;
  const words = trainer.metrics.words;

  const emit = async (controller: TransformStreamDefaultController<StepRecord>) => {
    const { record, metrics } = pending.shift()!;
    const m = await metrics;
    opts.runs.forEach((name, r) => {
      const loss = m[r * words + trainer.metrics.loss];
      const norm = Math.sqrt(m[r * words + trainer.metrics.norm2]);
      if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
        throw new TrainingDivergedError(
          `training diverged at step ${record.step}: run ${name} has loss ${loss} and S weight norm ${norm}`,
        );
      }
      // Run A is the reference of every ratio: never rescaled (weight decay bounds its norm).
      if (r === 0 || requested[r] || record.step < rescaleAppliedAt[r]) return;
      const s = rescaleFactor(norm, opts.rescaleAbove);
      if (s !== 1) {
        plan.requestRescale(r, s);
        requested[r] = true;
      }
    });
    controller.enqueue({ ...record, metrics: m });
  };

  return new TransformStream<Batch, StepRecord>({
    async transform(batch, controller) {
      const steps = plan.next();
      steps.forEach((s, r) => {
        if (s.rescale === 1) return;
        rescaleAppliedAt[r] = batch.step;
        requested[r] = false;
        rescales.push({
          step: batch.step,
          epoch: batch.epoch,
          run: opts.runs[r],
          factor: s.rescale,
        });
      });
      const meter = batch.step % opts.every === 0 || batch.step === opts.totalSteps - 1;
      // Eval mode at the first metered step at or after each multiple of evalEvery.
      const evalMode = meter && opts.evalEvery > 0 && batch.step >= nextEval;
      if (evalMode) nextEval = (Math.floor(batch.step / opts.evalEvery) + 1) * opts.evalEvery;
      const { metrics } = await trainer.submitStep(batch.x, batch.y, batch.size, steps, {
        meter,
        evalMode,
      });
      if (metrics) {
        pending.push({
          record: {
            step: batch.step,
            epoch: batch.epoch,
            rows: batch.size,
            plan: steps,
            evalMode,
            rescales,
          },
          metrics,
        });
        rescales = [];
      }
      while (pending.length > opts.inFlight) await emit(controller);
    },
    async flush(controller) {
      while (pending.length > 0) await emit(controller);
    },
  });
}
