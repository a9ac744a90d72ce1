/**
 * Training: the GPU trainer built from the prepared job (or restored from its checkpoint), and
 * the chain of stream stages loader → step → monitor → events → checkpoints → sink, with
 * backpressure.
 *
 * @module
 */

import { gpuName } from "../shaders/gpu.ts";
import { seeds } from "../core/prng.ts";
import type { Gpu } from "../shaders/gpu.ts";
import type { Precision } from "../shaders/precision.ts";
import { df64SelfTest, df64SelfTestMessage } from "../shaders/df64_selftest.ts";
import { realSelfTest, realSelfTestMessage } from "../shaders/precision_selftest.ts";
import { batchStream } from "../stages/data/loader.ts";
import { GpuTrainer } from "../stages/trainer.ts";
import { tuneRequests } from "../stages/tuner.ts";
import type { Tilings } from "../shaders/tilings.ts";
import { RunControl, stepStage } from "../stages/step.ts";
import { monitorStage, type OutputRow, SummaryTracker } from "../stages/monitor.ts";
import { outputColumns, type RowOptions } from "../stages/columns.ts";
import { eventLogStage } from "../stages/events.ts";
import { outputSink, type RowsWritten } from "../stages/sink.ts";
import { type CheckpointContext, checkpointStage } from "../stages/checkpoint.ts";
import type { DirOwner } from "../stages/checkpoint_dir.ts";
import {
  augmentOptions,
  plannedSteps,
  type Prepared,
  type PreparedModel,
  trainerOptions,
} from "./prepare.ts";
import {
  type RunTilings,
  runTilings,
  type TilingsUsed,
  tilingsUsed,
  usableTilings,
} from "./tune.ts";
import { VERSION } from "./version.ts";
import { type Config, configHash, trajectorySettings } from "./config.ts";

/** Where the pipeline writes: data to `stdout`, everything else through `log`. */
export interface PipelineIO {
  stdout: WritableStream<Uint8Array>;
  /** One line to stderr. */
  log(line: string): void;
  /** A transient progress line (stderr when it is a terminal), or undefined for none. */
  progress?: (line: string) => void;
  /** Stop requests (signals), shared with the command line; divergence is reported in it. */
  control?: RunControl;
}

/** What training leaves for the summary. */
export interface Trained {
  trainer: GpuTrainer;
  tracker: SummaryTracker;
  /** Steps trained in this session (fewer than the tracker's when resumed). */
  stepsHere: number;
  seconds: number;
  /** What reached stdout. */
  rows: RowsWritten;
  /** Why the run stopped early (a signal, divergence, closed stdout), if it did. */
  control: RunControl;
  /** The last checkpoint written, if any. */
  checkpoint?: string;
  /** The kernel tilings the step ran with. */
  tilings: TilingsUsed;
}

/** The run a checkpoint folder belongs to: its config hash and trajectory settings. */
export function dirOwner(config: Config): DirOwner {
  return { configHash: configHash(config), settings: trajectorySettings(config) };
}

/** |cos(grad, w)| over S above which the group is reported as not scale-invariant. */
export const GRAD_COS_WARNING = 1e-3;

/**
 * Checks that the adapter computes right in `precision`: df64 runs the double-float primitives'
 * self-test (TwoSum, TwoProduct, division, square root, exp, log against float64), and df64 and
 * f64 the kernels' `r_*` functions; f64 first needs the `shader-f64` feature. Returns the line
 * to log; throws one line naming what failed.
 */
export async function checkPrecision(gpu: Gpu, precision: Precision): Promise<string> {
  const adapter = gpuName(gpu);
  if (precision === "f32") return "precision: f32";
  if (precision === "f64" && !gpu.f64) {
    throw new Error(
      `--precision f64: the adapter ${adapter} lacks the WebGPU feature shader-f64 (native ` +
        `float64 in shaders); use --precision df64`,
    );
  }
  const worst: number[] = [];
  if (precision === "df64") {
    const primitives = await df64SelfTest(gpu);
    if (!primitives.ok) throw new Error(df64SelfTestMessage(adapter, primitives));
    worst.push(...Object.values(primitives.worst));
  }
  const functions = await realSelfTest(gpu, precision);
  if (!functions.ok) throw new Error(realSelfTestMessage(adapter, precision, functions));
  worst.push(...Object.values(functions.worst));
  return `precision: ${precision}, self-test passed on ${adapter} (worst relative error ${
    Math.max(...worst).toExponential(1)
  })`;
}

/**
 * Planned GPU memory of `config`'s step (every buffer, bytes), in all (`bytes` when a trainer
 * has sized it already) and for one run.
 */
export function plannedMemory(
  config: Config,
  p: Pick<PreparedModel, "layout" | "train" | "probe">,
  bytes = GpuTrainer.plannedMemory(trainerOptions(config, p)).bytes,
): { bytes: number; perRunBytes: number } {
  return { bytes, perRunBytes: GpuTrainer.plannedMemory(trainerOptions(config, p, 1)).bytes };
}

/**
 * The GPU trainer of a prepared job, with its initial (or checkpointed) state uploaded, its
 * kernels at `tilings` (default tilings without).
 */
export function createTrainer(p: Prepared, gpu: Gpu, tilings?: Tilings): Promise<GpuTrainer> {
  const options = { ...trainerOptions(p.config, p), tilings };
  return p.resume
    ? GpuTrainer.restore(gpu, options, p.resume.state, p.resume.file.meta.step + 1)
    : GpuTrainer.create(gpu, options, p.init.params, p.init.bufs);
}

/**
 * A resumed run's tilings: the checkpoint's (unless `--tune off`), so it computes as the run it
 * continues did, whatever the tilings cache holds now; undefined when not resuming (or resuming
 * a checkpoint that has none recorded).
 */
async function resumeTilings(
  p: Prepared,
  gpu: Gpu,
  log: (line: string) => void,
): Promise<RunTilings | undefined> {
  const recorded = p.resume?.file.meta.tilings;
  if (!recorded || p.config.tune === "off") return undefined;
  const n = Object.keys(recorded).length;
  if (n) log(`tilings: the checkpoint's ${n} tuned kernels, as the run it resumes had them`);
  const from = p.resume!.file.source;
  const chosen = new Map(Object.entries(recorded));
  const requests = tuneRequests(trainerOptions(p.config, p), gpu.device.limits);
  const tilings = await usableTilings(gpu, requests, chosen, `checkpoint ${from}`, log);
  return { tilings, from };
}

/** What every checkpoint of the prepared job records besides the snapshot. */
function checkpointContext(p: Prepared, tilings?: Tilings): CheckpointContext {
  const { config } = p, perEpoch = plannedSteps(config, p.train.n).perEpoch;
  return {
    layout: p.layout,
    runs: config.runs,
    runningStats: config["running-stats"],
    version: VERSION,
    modelSha256: p.modelFile?.sha256,
    config,
    dataPosition: (step) => ({
      epoch: Math.floor((step + 1) / perEpoch),
      batch_in_epoch: (step + 1) % perEpoch,
      batch_size: config["batch-size"],
    }),
    seeds: seeds(config),
    tilings: Object.fromEntries([...tilings?.used ?? []].map((k) => [k, tilings!.chosen.get(k)!])),
  };
}

/** Per step: warns once per run when S is not scale-invariant, and shows progress. */
function stepObserver(p: Prepared, io: PipelineIO, started: number, startStep: number) {
  const warned = new Set<string>();
  return (v: Record<string, number | undefined>) => {
    for (const r of p.config.runs) {
      const cos = v[`${r}.grad_cos`] ?? 0;
      if (Math.abs(cos) > GRAD_COS_WARNING && !warned.has(r)) {
        warned.add(r);
        io.log(
          `warning: step ${v.step}: run ${r} has cos(grad, w) = ${
            cos.toExponential(2)
          } over group S; ` +
            `a scale-invariant group has 0 (BatchNorm eps makes it approximate)`,
        );
      }
    }
    if (!io.progress) return;
    const done = (v.step ?? 0) + 1, secs = (performance.now() - started) / 1000;
    const rate = (done - startStep) / secs, eta = (p.totalSteps - done) / rate;
    io.progress(
      `step ${done}/${p.totalSteps}  ${rate.toFixed(2)} steps/s  ETA ${eta.toFixed(0)} s`,
    );
  };
}

/**
 * Trains every run of the prepared job in lockstep, streaming rows to `io.stdout`, from step 0
 * or from the step after the checkpoint it resumes. Stops early, with a checkpoint when
 * checkpointing is on, when `io.control` asks; on divergence it stops without one.
 */
export async function train(p: Prepared, gpu: Gpu, io: PipelineIO): Promise<Trained> {
  const { config } = p;
  const control = io.control ?? new RunControl();
  io.log(await checkPrecision(gpu, config.precision));
  const run = await resumeTilings(p, gpu, io.log) ??
    await runTilings(config, gpu, trainerOptions(config, p), io.log);
  const tilings = run?.tilings;
  const trainer = await createTrainer(p, gpu, tilings);
  const startStep = p.resume ? p.resume.file.meta.step + 1 : 0;
  if (p.resume) p.plan.restore(p.resume.file.meta.plan);
  const monitorOpts: RowOptions = {
    runs: config.runs,
    record: trainer.record,
    sTensors: p.layout.sTensors.length,
    probeRows: p.probe.size,
    perLayer: config["per-layer"],
  };
  const tracker = new SummaryTracker(config.runs);
  if (p.resume) tracker.restore(p.resume.file.meta.tracker);
  const dir = config["checkpoint-dir"];
  let checkpoint: string | undefined;
  const checkpoints = dir
    ? checkpointStage({
      dir,
      keep: config.keep,
      context: checkpointContext(p, tilings),
      owner: dirOwner(config),
      onWritten: (path, step, diverged) => {
        if (!diverged) checkpoint = path;
        io.log(
          `checkpoint: ${path} (after step ${step}${
            diverged ? "; the state at the divergence, for inspection: --resume never picks it" : ""
          })`,
        );
      },
    })
    : new TransformStream<OutputRow, OutputRow>();
  const started = performance.now();
  let rows: RowsWritten | undefined;
  await batchStream(p.trainX, p.train.y, p.train.dim, {
    batchSize: config["batch-size"],
    epochs: p.epochs,
    shuffle: config.shuffle,
    seed: seeds(config).shuffle,
    lastBatch: config["last-batch"],
    maxSteps: p.totalSteps,
    startStep,
    stop: () => control.stopping,
    augment: augmentOptions(config),
    image: p.train.image,
    source: p.train.source,
  })
    .pipeThrough(stepStage(trainer, p.plan, {
      runs: config.runs,
      every: config.every,
      totalSteps: p.totalSteps,
      probeEvery: config["probe-every"],
      evalEvery: config["eval-every"],
      inFlight: config["in-flight"],
      rescaleAbove: config["rescale-above"],
      checkpointEvery: config["checkpoint-every"],
      snapshots: dir !== undefined,
      control,
      resume: p.resume?.file.meta.stepper,
    }))
    .pipeThrough(monitorStage(monitorOpts, tracker, stepObserver(p, io, started, startStep)))
    .pipeThrough(eventLogStage(io.log))
    .pipeThrough(checkpoints)
    .pipeTo(outputSink(io.stdout, {
      format: config.format,
      columns: outputColumns(monitorOpts),
      control,
      onClose: (written) => rows = written,
    }));
  const seconds = (performance.now() - started) / 1000;
  await trainer.finish();
  const stepsHere = trainer.stepsDone - startStep;
  return {
    trainer,
    tracker,
    stepsHere,
    seconds,
    rows: rows!,
    control,
    checkpoint,
    tilings: tilingsUsed(config, run),
  };
}
