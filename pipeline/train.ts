/**
 * Training: the GPU trainer built from the prepared job, and the chain of stream stages
 * loader → step → monitor → events → sink, with backpressure.
 *
 * @module
 */

import { deriveSeed } from "../core/prng.ts";
import type { Gpu } from "../shaders/gpu.ts";
import { batchStream } from "../stages/data/loader.ts";
import { GpuTrainer } from "../stages/trainer.ts";
import { stepStage } from "../stages/step.ts";
import {
  monitorColumns,
  type MonitorOptions,
  monitorStage,
  SummaryTracker,
} from "../stages/monitor.ts";
import { eventLogStage } from "../stages/events.ts";
import { OutputClosedError, outputSink } from "../stages/sink.ts";
import { augmentOptions, type Prepared } from "./prepare.ts";

/** Where the pipeline writes: data to `stdout`, everything else through `log`. */
export interface PipelineIO {
  stdout: WritableStream<Uint8Array>;
  /** One line to stderr. */
  log(line: string): void;
  /** A transient progress line (stderr when it is a terminal), or undefined for none. */
  progress?: (line: string) => void;
}

/** What training leaves for the summary. */
export interface Trained {
  trainer: GpuTrainer;
  tracker: SummaryTracker;
  rescales: number;
  seconds: number;
  /** True when stdout was closed early (the run stopped there). */
  outputClosed: boolean;
}

/** |cos(grad, w)| over S above which the group is reported as not scale-invariant. */
export const GRAD_COS_WARNING = 1e-3;

/** The GPU trainer of a prepared job, with its initial state uploaded. */
export function createTrainer(p: Prepared, gpu: Gpu): Promise<GpuTrainer> {
  const { config, train } = p;
  return GpuTrainer.create(
    gpu,
    {
      layout: p.layout,
      runs: config.runs.length,
      batchRows: config["batch-size"],
      shortBatchRows: config["last-batch"] === "keep"
        ? train.n % config["batch-size"] || undefined
        : undefined,
      probe: { x: p.probe.x, y: p.probe.y, rows: p.probe.size },
      bnMomentum: config["bn-momentum"],
      runningStats: config["running-stats"],
      seed: deriveSeed(config.seed, "perturb"),
      inFlight: config["in-flight"],
    },
    p.init.params,
    p.init.bufs,
  );
}

/** Per step: warns once per run when S is not scale-invariant, and shows progress. */
function stepObserver(p: Prepared, io: PipelineIO, started: number) {
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
    const rate = done / secs, eta = (p.totalSteps - done) / rate;
    io.progress(
      `step ${done}/${p.totalSteps}  ${rate.toFixed(2)} steps/s  ETA ${eta.toFixed(0)} s`,
    );
  };
}

/** Trains every run of the prepared job in lockstep, streaming rows to `io.stdout`. */
export async function train(p: Prepared, gpu: Gpu, io: PipelineIO): Promise<Trained> {
  const { config } = p;
  const trainer = await createTrainer(p, gpu);
  const monitorOpts: MonitorOptions = {
    runs: config.runs,
    layout: trainer.metrics,
    sTensors: p.layout.sTensors.length,
    probeRows: p.probe.size,
    perLayer: config["per-layer"],
  };
  const tracker = new SummaryTracker(config.runs);
  const events = eventLogStage(io.log);
  const started = performance.now();
  let outputClosed = false;
  try {
    await batchStream(p.trainX, p.train.y, p.train.dim, {
      batchSize: config["batch-size"],
      epochs: p.epochs,
      shuffle: config.shuffle,
      seed: deriveSeed(config.seed, "shuffle"),
      lastBatch: config["last-batch"],
      maxSteps: p.totalSteps,
      augment: augmentOptions(config),
      image: p.train.image,
      source: p.train.source,
    })
      .pipeThrough(stepStage(trainer, p.plan, {
        runs: config.runs,
        every: config.every,
        totalSteps: p.totalSteps,
        evalEvery: config["eval-every"],
        inFlight: config["in-flight"],
        rescaleAbove: config["rescale-above"],
      }))
      .pipeThrough(monitorStage(monitorOpts, tracker, stepObserver(p, io, started)))
      .pipeThrough(events.stage)
      .pipeTo(outputSink(io.stdout, config.format, monitorColumns(monitorOpts)));
  } catch (e) {
    if (!(e instanceof OutputClosedError)) throw e;
    outputClosed = true;
  }
  const seconds = (performance.now() - started) / 1000;
  await trainer.finish();
  return { trainer, tracker, rescales: events.count(), seconds, outputClosed };
}
