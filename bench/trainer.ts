/**
 * The trainer the benchmarks time: batch 128 of random inputs, a random probe of `probe`
 * rows, the runs' plan from the default configuration.
 *
 * @module
 */

import type { Gpu } from "../shaders/gpu.ts";
import { GpuTrainer, type TrainerOptions } from "../stages/trainer.ts";
import { type RunName, RunPlan } from "../core/runs.ts";
import type { ModelLayout } from "../core/graph.ts";
import { initialState } from "../core/init.ts";
import { createRng } from "../core/prng.ts";
import { runsSpec } from "../pipeline/prepare.ts";
import { validateConfig } from "../pipeline/config.ts";

/** Rows of a training batch. */
export const BATCH = 128;

/** What a bench trainer may change: GPU timestamps per phase, the precision, the tilings. */
export type BenchTrainerOptions = Pick<TrainerOptions, "profile" | "precision" | "tilings">;

/** A trainer of `runs` on `layout` with random batches and probe, for timing. */
export async function benchTrainer(
  gpu: Gpu,
  layout: ModelLayout,
  runs: RunName[],
  probe: number,
  options: BenchTrainerOptions = {},
): Promise<{ trainer: GpuTrainer; plan: RunPlan; x: Float32Array; y: Int32Array }> {
  const dim = layout.inputSize, classes = layout.classes;
  const plan = new RunPlan(runsSpec(validateConfig({ runs }, "bench"), 1000));
  const rng = createRng(1);
  const x = Float32Array.from({ length: BATCH * dim }, () => rng.normal());
  const y = Int32Array.from({ length: BATCH }, () => rng.int(classes));
  const probeX = Float32Array.from({ length: probe * dim }, () => rng.normal());
  const probeY = Int32Array.from({ length: probe }, () => rng.int(classes));
  const init = initialState(layout, plan, 0, 1);
  const trainer = await GpuTrainer.create(
    gpu,
    benchOptions(layout, runs.length, { x: probeX, y: probeY, rows: probe }, options),
    init.params,
    init.bufs,
  );
  return { trainer, plan, x, y };
}

/** The trainer options every bench trainer uses (batch {@link BATCH}, two steps in flight). */
export function benchOptions(
  layout: ModelLayout,
  runs: number,
  probe: TrainerOptions["probe"],
  options: BenchTrainerOptions = {},
): TrainerOptions {
  return {
    layout,
    runs,
    batchRows: BATCH,
    probe,
    bnMomentum: 0.1,
    runningStats: "weightnorm",
    seed: 0,
    inFlight: 2,
    ...options,
  };
}
