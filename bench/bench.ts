/**
 * `deno task bench`: matmul GFLOP/s at the MLP's shapes and the adapter's measured ceiling,
 * then training steps per second of each model at batch 128 for R = 1 and R = 3, each
 * the median of several timed repetitions after a warm-up, GPU work finished inside the timed
 * window: bare (no metrics read back), metered (every step's metrics and distances on the
 * training batch read back), and as `deno task train` runs by default (metered, the probe
 * every `--probe-every` steps), the meterings of a model timed in interleaved rounds, and every
 * model bare at the tilings cache's tilings in the same rounds (`bare, tuned`; `--tune
 * off|cached|on`, `--tune-cache FILE` and `--budget SECONDS` as `train` takes them); then the
 * MLP in df64 against f32 (the `--precision df64` slowdown).
 * Prints a table on stderr and one JSON object on stdout (for `docs/` or other tools).
 * `--profile` instead times each phase of one metered MLP step with GPU timestamps
 * (bench/profile.ts); `--precision` runs only the df64 comparison.
 *
 * @module
 */

import { acquireGpu, type Gpu, gpuName } from "../shaders/gpu.ts";
import type { Precision } from "../shaders/precision.ts";
import type { RunName } from "../core/runs.ts";
import type { ModelLayout } from "../core/graph.ts";
import { buildModel, type ModelSpec } from "../core/models.ts";
import { forwardFlops, trainStepFlops } from "../core/flops.ts";
import { PROBE_EVERY } from "../pipeline/config.ts";
import { benchMatmul, matmulCeiling } from "./matmul.ts";
import { benchConv, preResNetShapes } from "./conv.ts";
import { profileStep } from "./profile.ts";
import { BATCH, benchOptions, benchTrainer } from "./trainer.ts";
import { GpuTrainer } from "../stages/trainer.ts";
import { mib } from "../pipeline/summary.ts";
import { defaultProbe } from "../pipeline/prepare.ts";
import { type Config, validateConfig } from "../pipeline/config.ts";
import { runTilings } from "../pipeline/tune.ts";
import type { Tilings } from "../shaders/tilings.ts";
import { parseArgs } from "node:util";

/**
 * The models timed, with their input shapes; the convolutional ones bare only and with fewer
 * steps per repetition (a PreResNet-20 step of three runs takes seconds on lavapipe).
 */
/** How a timed step is metered: never, every step, or every step with the probe every K. */
export interface Metering {
  name: "bare" | "metered" | "default" | "probe every step" | "bare, tuned";
  meter: boolean;
  /** The probe runs on steps that are multiples of this (Infinity: never). */
  probeEvery: number;
  /** With the tilings cache's tilings (the others run the default tilings). */
  tuned?: boolean;
}

const METERINGS: Metering[] = [
  { name: "bare", meter: false, probeEvery: Infinity },
  { name: "metered", meter: true, probeEvery: Infinity },
  { name: "default", meter: true, probeEvery: PROBE_EVERY },
  { name: "probe every step", meter: true, probeEvery: 1 },
];

/** A bare step at the tuned tilings, timed beside the default tilings' bare step. */
const TUNED: Metering = { name: "bare, tuned", meter: false, probeEvery: Infinity, tuned: true };

const MODELS: { spec: ModelSpec; input: number[]; metered: boolean; steps: number }[] = [
  { spec: { model: "mlp", hidden: [256, 256] }, input: [784], metered: true, steps: 20 },
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

/** Steps per second under each metering, and each one's ratio to the first (bare). */
interface Rates {
  stepsPerSecond: number[];
  ratioToFirst: number[];
}

/**
 * Steps per second of the trainer with `runs` runs under each of `meterings`, timed in rounds
 * (a block of `steps` steps per metering in every round, the order rotated each round; the
 * median of the rounds after a warm-up one). This host's speed drifts by up to 2× within
 * seconds, so a ratio to the first metering is the median of the rounds' ratios of blocks timed
 * side by side, not a ratio of medians.
 */
async function benchTraining(
  gpu: Gpu,
  layout: ModelLayout,
  runs: RunName[],
  meterings: Metering[],
  steps: number,
  probe: number,
  precision: Precision = "f32",
  tilings?: Tilings,
): Promise<Rates> {
  const trainers = [];
  for (const m of meterings) {
    const options = { precision, tilings: m.tuned ? tilings : undefined };
    trainers.push(await benchTrainer(gpu, layout, runs, probe, options));
  }
  const reps = steps >= 10 ? 9 : 2;
  const rates: number[][] = meterings.map(() => []);
  for (let rep = 0; rep <= reps; rep++) {
    for (const i of meterings.map((_, k) => (k + rep) % meterings.length)) {
      const { trainer, plan, x, y } = trainers[i], metering = meterings[i];
      const t0 = performance.now();
      const pending: Promise<unknown>[] = [];
      for (let s = 0; s < steps; s++) {
        const { metrics } = await trainer.submitStep(x, y, BATCH, plan.next(), {
          meter: metering.meter,
          // Not `s % Infinity === 0`, which holds at s = 0: "metered" runs no probe at all.
          probe: metering.meter && Number.isFinite(metering.probeEvery) &&
            s % metering.probeEvery === 0,
          evalMode: false,
        });
        if (metrics) pending.push(metrics);
      }
      await Promise.all(pending);
      await trainer.finish();
      // rep 0 is the warm-up
      if (rep > 0) rates[i].push(steps / ((performance.now() - t0) / 1000));
    }
  }
  return {
    stepsPerSecond: rates.map(median),
    ratioToFirst: rates.map((r) => median(r.map((x, k) => x / rates[0][k]))),
  };
}

/**
 * Steps per second of the MLP in df64 and in f32 (R = 1 and 3; bare and the default metering)
 * and the slowdown factor, measured back to back in one run.
 */
async function benchPrecision(
  gpu: Gpu,
  log: (s: string) => void,
): Promise<Record<string, unknown>> {
  const { spec, input, steps } = MODELS[0];
  const layout = buildModel(spec, { inputShape: input, classes: 10, affine: true });
  const probe = defaultProbe(spec.model), out: Record<string, unknown> = {};
  for (const runs of [["A"], ["A", "B", "A1"]] as RunName[][]) {
    for (const metering of METERINGS.filter((m) => m.name === "bare" || m.name === "default")) {
      const [f32] = (await benchTraining(gpu, layout, runs, [metering], steps, probe))
        .stepsPerSecond;
      // df64 steps take ~10x longer: a quarter of the steps keeps the timing to seconds.
      const [df64] = (await benchTraining(gpu, layout, runs, [metering], steps / 4, probe, "df64"))
        .stepsPerSecond;
      const key = `mlp R${runs.length}_${metering.name}`;
      out[key] = { f32_steps_per_second: f32, df64_steps_per_second: df64, slowdown: f32 / df64 };
      log(
        `precision: ${layout.description} R=${runs.length}, ${metering.name}: f32 ${
          f32.toFixed(2)
        } steps/s, df64 ${df64.toFixed(2)} steps/s: ${(f32 / df64).toFixed(1)}x slower`,
      );
    }
  }
  return out;
}

/**
 * The tilings flags of `deno task bench` (`--tune off|cached|on`, `--tune-cache FILE`,
 * `--budget SECONDS`, as `train` takes them), validated as the training configuration is.
 */
function benchFlags(args: string[]): Config {
  const { values } = parseArgs({
    args: args.filter((a) => a !== "--profile" && a !== "--precision"),
    options: {
      tune: { type: "string" },
      "tune-cache": { type: "string" },
      budget: { type: "string" },
    },
    strict: true,
  });
  return validateConfig(values, "bench");
}

if (import.meta.main && Deno.args.includes("--profile")) {
  await profileStep(await acquireGpu());
} else if (import.meta.main && Deno.args.includes("--precision")) {
  const gpu = await acquireGpu();
  const log = (s: string) => console.error(s);
  log(`adapter: ${gpuName(gpu)}`);
  console.log(JSON.stringify({
    adapter: gpuName(gpu),
    date: new Date().toISOString(),
    precision: await benchPrecision(gpu, log),
  }));
} else if (import.meta.main) {
  const flags = benchFlags(Deno.args);
  const gpu = await acquireGpu();
  const out: Record<string, unknown> = {
    adapter: gpuName(gpu),
    date: new Date().toISOString(),
  };
  const log = (s: string) => console.error(s);
  log(`adapter: ${gpuName(gpu)}`);
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
    const flops = trainStepFlops(layout, BATCH), probe = defaultProbe(spec.model);
    for (const runs of [["A"], ["A", "B", "A1"]] as RunName[][]) {
      const options = benchOptions(layout, runs.length, {
        x: new Float32Array(probe * layout.inputSize),
        y: new Int32Array(probe),
        rows: probe,
      });
      const tilings = (await runTilings(flags, gpu, options, log))?.tilings;
      const meterings = [
        ...(metered ? METERINGS : METERINGS.slice(0, 1)),
        ...(tilings ? [TUNED] : []),
      ];
      const rates = await benchTraining(gpu, layout, runs, meterings, steps, probe, "f32", tilings);
      const memory = GpuTrainer.plannedMemory(options).bytes;
      if (tilings) {
        // The tuned trainer's step asked for these; each one the cache had replaced a default.
        const tuned = tilings.used.size;
        log(`tilings ${layout.description} R=${runs.length}: ${tuned} kernels tuned in the cache`);
      }
      log(`memory ${layout.description} R=${runs.length}: ${mib(memory)} planned (every buffer)`);
      for (const [i, metering] of meterings.entries()) {
        const sps = rates.stepsPerSecond[i], toBare = rates.ratioToFirst[i];
        // FLOPs counted: the training step, and the probe's forward where it ran.
        const probeShare = metering.meter && Number.isFinite(metering.probeEvery)
          ? 1 / metering.probeEvery
          : 0;
        const perRun = flops + probeShare * forwardFlops(layout, probe);
        const gflops = (sps * perRun * runs.length) / 1e9;
        const key = `${spec.model} R${runs.length}${
          metering.name === "bare" ? "" : `_${metering.name.replace(/,? /g, "_")}`
        }`;
        training[key] = {
          model: layout.description,
          memory_bytes: memory,
          steps_per_second: sps,
          gflops,
          ratio_to_ceiling: gflops / ceiling.gflops,
          ratio_to_bare: toBare,
        };
        log(
          `train ${layout.description} batch ${BATCH}, R=${runs.length}, ${metering.name}` +
            `${
              metering.probeEvery === PROBE_EVERY ? ` (probe ${probe} every ${PROBE_EVERY})` : ""
            }: ` +
            `${sps.toFixed(2)} steps/s (${toBare.toFixed(2)}x bare), ${
              gflops.toFixed(2)
            } GFLOP/s (${(gflops / ceiling.gflops * 100).toFixed(0)}% of ceiling)`,
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
  out.precision = await benchPrecision(gpu, log);
  console.log(JSON.stringify(out));
}
