/**
 * `deno task bench`: matmul GFLOP/s at the MLP's shapes and the adapter's measured ceiling,
 * then training steps per second of each model at batch 128 for R = 1 and R = 3, each
 * the median of several timed repetitions after a warm-up, GPU work finished inside the timed
 * window. Prints a table on stderr and one JSON object on stdout (for `docs/` or other tools).
 *
 * @module
 */

import { acquireGpu, type Gpu } from "../shaders/gpu.ts";
import { GpuTrainer } from "../stages/trainer.ts";
import { type RunName, RunPlan } from "../core/runs.ts";
import type { ModelLayout } from "../core/graph.ts";
import { buildModel, type ModelSpec } from "../core/models.ts";
import { initialState } from "../core/init.ts";
import { forwardFlops, trainStepFlops } from "../core/flops.ts";
import { runsSpec } from "../pipeline/prepare.ts";
import { validateConfig } from "../pipeline/config.ts";
import { createRng } from "../core/prng.ts";
import { benchMatmul, matmulCeiling } from "./matmul.ts";
import { benchConv, preResNetShapes } from "./conv.ts";

const BATCH = 128;
const PROBE = 512;

/**
 * The models timed, with their input shapes; the convolutional ones bare only and with fewer
 * steps per repetition (a PreResNet-20 step of three runs takes seconds on lavapipe).
 */
const MODELS: { spec: ModelSpec; input: number[]; metered: boolean; steps: number }[] = [
  { spec: { model: "mlp", hidden: [256, 256] }, input: [784], metered: true, steps: 10 },
  { spec: { model: "cnn" }, input: [28, 28, 1], metered: false, steps: 2 },
  {
    spec: { model: "preresnet", depth: 20, width: 16 },
    input: [32, 32, 3],
    metered: false,
    steps: 1,
  },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Steps per second of the trainer with `runs` runs; `meter` adds the per-step monitor work. */
async function benchTraining(
  gpu: Gpu,
  layout: ModelLayout,
  runs: RunName[],
  meter: boolean,
  steps: number,
): Promise<number> {
  const dim = layout.inputSize, classes = layout.classes;
  const plan = new RunPlan(runsSpec(validateConfig({ runs }, "bench"), 1000));
  const rng = createRng(1);
  const x = Float32Array.from({ length: BATCH * dim }, () => rng.normal());
  const y = Int32Array.from({ length: BATCH }, () => rng.int(classes));
  const probeX = Float32Array.from({ length: PROBE * dim }, () => rng.normal());
  const probeY = Int32Array.from({ length: PROBE }, () => rng.int(classes));
  const init = initialState(layout, plan, 0, 1);
  const inFlight = 2;
  const trainer = await GpuTrainer.create(
    gpu,
    {
      layout,
      runs: runs.length,
      batchRows: BATCH,
      probe: { x: probeX, y: probeY, rows: PROBE },
      bnMomentum: 0.1,
      runningStats: "weightnorm",
      seed: 0,
      inFlight,
    },
    init.params,
    init.bufs,
  );
  const reps = steps >= 10 ? 5 : 2;
  const times: number[] = [];
  for (let rep = 0; rep <= reps; rep++) {
    const t0 = performance.now();
    const pending: Promise<Float32Array>[] = [];
    for (let s = 0; s < steps; s++) {
      const { metrics } = await trainer.submitStep(x, y, BATCH, plan.next(), {
        meter,
        evalMode: false,
      });
      if (metrics) pending.push(metrics);
    }
    await Promise.all(pending);
    await trainer.finish();
    if (rep > 0) times.push((performance.now() - t0) / 1000); // rep 0 is the warm-up
  }
  return steps / median(times);
}

if (import.meta.main) {
  const gpu = await acquireGpu();
  const out: Record<string, unknown> = {
    adapter: gpu.adapterDescription,
    date: new Date().toISOString(),
  };
  const log = (s: string) => console.error(s);
  log(`adapter: ${gpu.adapterDescription}`);
  const ceiling = await matmulCeiling(gpu);
  out.matmul_ceiling_gflops = ceiling.gflops;
  log(`matmul ceiling: ${ceiling.gflops.toFixed(2)} GFLOP/s at ${ceiling.shape}`);
  const shapes: [number, number, number][] = [[128, 784, 256], [128, 256, 256], [512, 512, 512]];
  const mm: Record<string, number> = {};
  for (const [m, n, k] of shapes) {
    const r = await benchMatmul(gpu, m, n, k);
    mm[`${m}x${n}x${k}`] = r.gflops;
    log(
      `matmul ${m}x${n}x${k}: ${r.gflops.toFixed(2)} GFLOP/s (${
        (r.gflops / ceiling.gflops * 100).toFixed(0)
      }% of ceiling)`,
    );
  }
  out.matmul_gflops = mm;
  const training: Record<string, unknown> = {};
  for (const { spec, input, metered, steps } of MODELS) {
    const layout = buildModel(spec, { inputShape: input, classes: 10, affine: true });
    const flops = trainStepFlops(layout, BATCH);
    for (const runs of [["A"], ["A", "B", "A1"]] as RunName[][]) {
      for (const meter of metered ? [false, true] : [false]) {
        const sps = await benchTraining(gpu, layout, runs, meter, steps);
        const perRun = flops + (meter ? forwardFlops(layout, PROBE) : 0);
        const gflops = (sps * perRun * runs.length) / 1e9;
        const key = `${spec.model} R${runs.length}${meter ? "_metered" : ""}`;
        training[key] = {
          model: layout.description,
          steps_per_second: sps,
          gflops,
          ratio_to_ceiling: gflops / ceiling.gflops,
        };
        log(
          `train ${layout.description} batch ${BATCH}, R=${runs.length}${
            meter ? ` + monitor (probe ${PROBE})` : ""
          }: ` +
            `${sps.toFixed(2)} steps/s, ${gflops.toFixed(2)} GFLOP/s (${
              (gflops / ceiling.gflops * 100).toFixed(0)
            }% of ceiling)`,
        );
      }
    }
  }
  out.training = training;
  // Convolution products at PreResNet-20's shapes (batch 128, 32×32, 16/32/64 channels).
  const conv: Record<string, unknown> = {};
  for (const r of await benchConv(gpu, preResNetShapes(BATCH), { reps: 3 })) {
    conv[`${r.name} ${r.product}`] = {
      gflops: r.gflops,
      ratio_to_ceiling: r.gflops / ceiling.gflops,
      tiling: r.tiling,
    };
    log(
      `conv ${r.name} ${r.product}: ${r.gflops.toFixed(2)} GFLOP/s (${
        (r.gflops / ceiling.gflops * 100).toFixed(0)
      }% of ceiling)`,
    );
  }
  out.conv = conv;
  console.log(JSON.stringify(out));
}
