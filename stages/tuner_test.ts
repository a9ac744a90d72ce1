/**
 * Tests of the autotuner on the GPU: tuned tilings reach every matmul, convolution and
 * normalization of a step and the step's gradients still equal the float64 reference's; a wrong
 * variant is never chosen, however fast; a variant that does not build is rejected with its
 * reason. On a dry GPU: which normalizations a step requests. (The search's determinism and the
 * cache's handling of stale and corrupt files are CPU tests: core/tune_search_test.ts,
 * pipeline/tune_cache_test.ts.)
 *
 * @module
 */

import type { Dispatch, Gpu } from "../shaders/gpu.ts";
import { gpuTest } from "../shaders/test_gpu.ts";
import {
  builderTiling,
  type TilingOverride,
  Tilings,
  tuneKey,
  tuneSpace,
} from "../shaders/tilings.ts";
import { tuneKernels, tuneRequests } from "./tuner.ts";
import { buildVariant, TuneCase } from "./tune_cases.ts";
import { GpuTrainer, type TrainerOptions } from "./trainer.ts";
import { CONV_MODELS, MLP, type Model, NORM_MODELS } from "./test_trainers.ts";
import { initialState } from "../core/init.ts";
import { RunPlan } from "../core/runs.ts";
import { testRunsSpec } from "../core/test_fixtures.ts";
import { assertClose, freshRng, randomFloats } from "../core/test_util.ts";
import { forwardBackward } from "../reference/trainer.ts";
import { dot } from "../reference/ops.ts";
import { DEFAULT_LIMITS } from "../shaders/dry_gpu.ts";
import { SPLIT_ROWS } from "../shaders/batchnorm.ts";

/** The trainer options of `model` with three runs (A, B, A1). */
function options(model: Model): TrainerOptions {
  const rng = freshRng(`tuner ${model.name}`), dim = model.layout.inputSize;
  return {
    layout: model.layout,
    runs: 3,
    batchRows: model.rows,
    probe: {
      x: randomFloats(rng, model.probe * dim),
      y: Int32Array.from({ length: model.probe }, () => rng.int(model.layout.classes)),
      rows: model.probe,
    },
    bnMomentum: 0.1,
    runningStats: "weightnorm",
    seed: 5,
    inFlight: 2,
  };
}

/**
 * For every kernel the step of `opts` builds, the first neighbour of its default that matches
 * the float64 reference (so every kernel runs a tiling other than its default).
 */
async function verifiedNeighbours(gpu: Gpu, opts: TrainerOptions): Promise<Tilings> {
  const rng = freshRng("tuner neighbours"), chosen = new Map<string, TilingOverride>();
  for (const r of tuneRequests(opts, gpu.device.limits)) {
    const tc = new TuneCase(gpu, r, rng), space = tuneSpace(r, gpu.device.limits);
    try {
      for (const t of space.neighbours(space.start)) {
        const d = buildVariant(gpu, tc.request, builderTiling(t));
        if ((await tc.verify(d)) === undefined) {
          chosen.set(tuneKey(r), builderTiling(t));
          break;
        }
      }
    } finally {
      tc.dispose();
    }
    if (!chosen.has(tuneKey(r))) throw new Error(`${tuneKey(r)}: no neighbour verified`);
  }
  return new Tilings(chosen);
}

/**
 * The small CNN (test_trainers.ts) at a batch whose first BatchNorm runs split: 26 examples of
 * 9×9 positions are 2106 rows, just past SPLIT_ROWS (the later ones, 4×4 and 2×2, run whole).
 */
const SPLIT_CNN: Model = { ...CONV_MODELS[0], name: "cnn, split batchnorm", rows: 26 };

/** The step models: normalization kernels each must request (none for the MLP's whole design). */
const STEP_MODELS: [Model, string[]][] = [
  [MLP, []],
  [SPLIT_CNN, ["batchnorm forward", "batchnorm backward"]],
  [NORM_MODELS[0], ["groupnorm forward", "groupnorm backward"]],
];

Deno.test("a step requests a normalization's training pass only, BatchNorm's only split", () => {
  const limits = DEFAULT_LIMITS as GPUSupportedLimits;
  /** The normalization requests of `model`'s step: their keys. */
  const keys = (model: Model) =>
    tuneRequests(options(model), limits)
      .filter((r) => r.kernel === "batchnorm" || r.kernel === "groupnorm").map(tuneKey);
  if (SPLIT_CNN.rows * 81 <= SPLIT_ROWS) throw new Error("the CNN's BatchNorm does not split");
  // The MLP at batch 128 too: BatchNorm whole, so none (its requests are as before).
  for (const [model, want] of [...STEP_MODELS, [{ ...MLP, rows: 128, probe: 128 }, []] as const]) {
    const got = keys(model);
    const passes = [...new Set(got.map((k) => k.split(" ").slice(0, 2).join(" ")))];
    if (passes.join() !== want.join()) throw new Error(`${model.name}: ${got.join("; ")}`);
    // The training forward saves xhat; the probe's forward (nothing saved) is not requested.
    const probe = got.find((k) => k.includes(" forward ") && !k.split(/[ +]/).includes("save"));
    if (probe) throw new Error(`${model.name}: requests ${probe}`);
  }
});

for (const [model] of STEP_MODELS) {
  gpuTest(
    `tuned tilings reach every matmul, convolution and normalization, and step 0's gradients equal the float64 reference's (${model.name})`,
    async (gpu) => {
      const opts = options(model);
      const tilings = await verifiedNeighbours(gpu, opts);
      const plan = new RunPlan(testRunsSpec({ runs: ["A", "B", "A1"] }));
      const { layout } = model, rng = freshRng(`tuner step ${model.name}`);
      const init = initialState(layout, plan, rng.nextU32(), 1);
      const trainer = await GpuTrainer.create(gpu, { ...opts, tilings }, init.params, init.bufs);
      // Every request the step made was answered with its non-default tiling.
      if (tilings.used.size !== tilings.chosen.size) {
        const unused = [...tilings.chosen.keys()].filter((k) => !tilings.used.has(k));
        throw new Error(`tilings not used by the step: ${unused.join("; ")}`);
      }
      const x = randomFloats(rng, model.rows * layout.inputSize, -2, 2);
      const y = Int32Array.from({ length: model.rows }, () => rng.int(layout.classes));
      const step = await trainer.submitStep(x, y, model.rows, plan.next(), {
        meter: true,
        probe: false,
        evalMode: false,
      });
      await step.metrics;
      const { grads } = await trainer.readState();
      for (let r = 0; r < 3; r++) {
        const w = init.params.subarray(r * layout.size, (r + 1) * layout.size);
        const want = forwardBackward(layout, w, x, y, model.rows, 1e-5).grad;
        for (const t of layout.tensors) {
          const at = r * layout.size + t.offset;
          const exp = want.subarray(t.offset, t.offset + t.size);
          const scale = Math.sqrt(dot(exp, exp) / t.size);
          assertClose(grads.subarray(at, at + t.size), exp, 1e-3, 1e-4 * scale, `${t.name}`);
        }
      }
      await trainer.finish();
    },
  );
}

/** `ds`'s pipelines over one workgroup each: fast, and wrong for any real shape. */
const truncated = (ds: Dispatch[]): Dispatch[] => ds.map((d) => ({ ...d, workgroups: [1, 1, 1] }));

gpuTest("a wrong variant is never chosen, however fast it runs", async (gpu) => {
  const limits = gpu.device.limits;
  // The MLP's matmuls, and the normalizations of the split-BatchNorm CNN and the GroupNorm model.
  const normalizations = [SPLIT_CNN, NORM_MODELS[0]].flatMap((m) =>
    tuneRequests(options(m), limits).filter((r) => r.kernel !== "matmul" && r.kernel !== "conv")
  );
  const requests = [...tuneRequests(options(MLP), limits), ...normalizations];
  const built: string[] = [];
  const tuned = await tuneKernels(gpu, requests, {
    budgetMs: 3000,
    batchRows: MLP.rows,
    log: () => {},
    // Every variant but the default computes one workgroup's share only.
    build(g, r, tiling) {
      const d = buildVariant(g, r, tiling);
      if (Object.keys(tiling).length === 0) return d;
      built.push(tuneKey(r));
      return truncated(d);
    },
  });
  if (built.length === 0) throw new Error("no variant was tried");
  const untried = tuned.filter((t, i) => i >= tuned.length - normalizations.length && t.tried < 2);
  if (untried.length) throw new Error(`no variant tried: ${untried.map((t) => t.key)}`);
  for (const t of tuned) {
    if (Object.keys(t.tiling).length) {
      throw new Error(`${t.key}: chose ${JSON.stringify(t.tiling)}`);
    }
    if (t.tried > 1 && t.rejected !== t.tried - 1) {
      throw new Error(`${t.key}: ${t.rejected} of ${t.tried - 1} wrong variants rejected`);
    }
    if (t.rejected && !t.notes.every((n) => n.startsWith("wrong result"))) {
      throw new Error(`${t.key}: notes ${t.notes}`);
    }
  }
});

gpuTest("a variant that does not build is rejected with its reason", async (gpu) => {
  const requests = tuneRequests(options(MLP), gpu.device.limits).slice(0, 2);
  const tuned = await tuneKernels(gpu, requests, {
    budgetMs: 2000,
    batchRows: MLP.rows,
    log: () => {},
    build(g, r, tiling) {
      if (Object.keys(tiling).length) throw new Error("this variant needs what the adapter lacks");
      return buildVariant(g, r, tiling);
    },
  });
  for (const t of tuned) {
    if (Object.keys(t.tiling).length || t.rejected !== t.tried - 1 || t.tried < 2) {
      throw new Error(`${t.key}: ${JSON.stringify(t)}`);
    }
    if (t.notes[0] !== "not built: this variant needs what the adapter lacks") {
      throw new Error(`${t.key}: notes ${t.notes}`);
    }
  }
});
