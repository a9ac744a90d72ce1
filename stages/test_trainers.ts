/**
 * The GPU trainer and the float64 reference trainer set up side by side for the tests: the same
 * float32 initial weights, plan, probe and batch stream, on small models whose widths are not
 * multiples of any tile.
 *
 * @module
 */

import type { Gpu } from "../shaders/gpu.ts";
import type { Precision } from "../shaders/precision.ts";
import { GpuTrainer } from "./trainer.ts";
import type { ModelLayout } from "../core/graph.ts";
import { RunPlan, type RunsSpec } from "../core/runs.ts";
import { initialState } from "../core/init.ts";
import { cnnLayout, mlpLayout, preresnetLayout, testRunsSpec } from "../core/test_fixtures.ts";
import { buildModel } from "../core/models.ts";
import { gnPreresnet } from "../models/gn_preresnet.ts";
import { lnMlp } from "../models/ln_mlp.ts";
import { ReferenceTrainer } from "../reference/trainer.ts";
import { freshRng, randomFloats } from "../core/test_util.ts";

/** A model under test with its batch, short-batch and probe rows. */
export interface Model {
  name: string;
  layout: ModelLayout;
  rows: number;
  short: number;
  probe: number;
}

/** A small BatchNorm MLP with widths that are not multiples of any tile. */
export const MLP: Model = {
  name: "mlp",
  layout: mlpLayout([37, 24, 19, 7]),
  rows: 32,
  short: 13,
  probe: 40,
};

/** A small CNN and PreResNet-8 (every convolutional op: conv, max and average pool, add). */
export const CONV_MODELS: Model[] = [
  { name: "cnn", layout: cnnLayout(9, 2, 7), rows: 6, short: 5, probe: 7 },
  {
    name: "preresnet-8 width 4",
    layout: preresnetLayout(8, 4, 8, 3, 7),
    rows: 6,
    short: 5,
    probe: 7,
  },
];

/**
 * The shipped GroupNorm PreResNet and LayerNorm MLP (models/), small: PreResNet-8 width 4 with
 * 2 groups, and an MLP with widths that are not multiples of any tile.
 */
export const NORM_MODELS: Model[] = [
  {
    name: "gn-preresnet-8 width 4",
    layout: buildModel({
      model: "function",
      fn: (x, data) => gnPreresnet(x, data, 8, 4, 2),
      description: "gn-preresnet-8 (width 4, 2 groups)",
    }, { inputShape: [8, 8, 3], classes: 7, affine: true }),
    rows: 6,
    short: 5,
    probe: 7,
  },
  {
    name: "ln-mlp",
    layout: buildModel({
      model: "function",
      fn: (x, data) => lnMlp(x, data, [24, 19]),
      description: "ln-mlp 37-24-19-7",
    }, { inputShape: [37], classes: 7, affine: true }),
    rows: 32,
    short: 13,
    probe: 40,
  },
];

/**
 * A CNN with a ReLU straight after a convolution (no normalization between), which the lowering
 * runs in place: conv 3×3 (5) → ReLU → max pool → conv 3×3 (6) → BN → ReLU → average pool → head.
 */
export const IN_PLACE_RELU_MODEL: Model = {
  name: "relu-cnn",
  layout: buildModel({
    model: "function",
    fn: (x, data) =>
      x.conv(5, 3).relu().maxpool2().conv(6, 3).bn().relu().avgpool()
        .linear(data.classes, { bias: true }),
    description: "relu-cnn",
  }, { inputShape: [9, 9, 2], classes: 7, affine: true }),
  rows: 6,
  short: 5,
  probe: 7,
};

/**
 * The environment variable that limits the trainer tests to some models, by the first word of
 * their names (`WD_TEST_MODELS=mlp`); unset: every model. `deno task test-dawn` sets it: on
 * SwiftShader the convolutional trainer tests take minutes, mostly compiling pipelines.
 */
export const TEST_MODELS_ENV = "WD_TEST_MODELS";

/** Whether the trainer tests cover `model` ({@link TEST_MODELS_ENV}). */
export function modelTested(model: Model): boolean {
  const only = Deno.env.get(TEST_MODELS_ENV);
  return !only || only.split(",").includes(model.name.split(/[ -]/)[0]);
}

/** The plan of `runs` over `steps`: warm-up, then a step schedule halving at the middle. */
export function trainerSpec(runs: RunsSpec["runs"], steps: number): RunsSpec {
  return testRunsSpec({
    runs,
    schedule: {
      base: 0.05,
      kind: "step",
      milestones: [steps / 2],
      factor: 0.5,
      minFactor: 0,
      warmupSteps: 3,
      warmupStartFactor: 0.2,
      totalSteps: steps,
    },
    wd: 5e-3,
    lrO: 0.05,
    wdO: 5e-4,
  });
}

/** What {@link setupTrainers} is given. */
export interface TrainerSetup {
  runs: RunsSpec["runs"];
  steps: number;
  runningStats: "weightnorm" | "plain";
  model?: Model;
  precision?: Precision;
}

/**
 * A GPU trainer and the float64 reference trainer of the same runs, with fresh random initial
 * weights, probe and batches (`batch()`); each has its own copy of the plan.
 */
export async function setupTrainers(gpu: Gpu, setup: TrainerSetup) {
  const { runs, steps, runningStats, model = MLP, precision = "f32" } = setup;
  const rng = freshRng(`gpu vs reference ${model.name} ${runningStats} ${precision}`);
  const { layout, rows: ROWS, probe: PROBE } = model;
  const dim = layout.inputSize, classes = layout.classes;
  const spec = trainerSpec(runs, steps);
  const gpuPlan = new RunPlan(spec), refPlan = new RunPlan(spec);
  const init = initialState(layout, gpuPlan, rng.nextU32(), 1);
  const probe = {
    x: randomFloats(rng, PROBE * dim, -2, 2),
    y: Int32Array.from({ length: PROBE }, () => rng.int(classes)),
    rows: PROBE,
  };
  const trainer = await GpuTrainer.create(
    gpu,
    {
      precision,
      layout,
      runs: runs.length,
      batchRows: ROWS,
      shortBatchRows: model.short,
      probe,
      bnMomentum: 0.1,
      runningStats,
      seed: 5,
      inFlight: 2,
    },
    init.params,
    init.bufs,
  );
  // The reference starts from run A's float32 weights (A1's ulp is re-applied in float64).
  const ref = new ReferenceTrainer(
    layout,
    refPlan,
    Float64Array.from(init.params.subarray(0, layout.size)),
    { bnMomentum: 0.1, runningStats, seed: 5 },
  );
  const batch = () => ({
    x: randomFloats(rng, ROWS * dim, -2, 2),
    y: Int32Array.from({ length: ROWS }, () => rng.int(classes)),
  });
  return { layout, gpuPlan, trainer, ref, batch, init, probe, rows: ROWS, short: model.short };
}
