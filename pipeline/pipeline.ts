/**
 * The pipeline: loader → step → monitor → sink, a chain of Web Streams with backpressure, built
 * from a validated {@link Config}. Also the startup checks and the final summary.
 *
 * @module
 */

import { type Config, ConfigError } from "./config.ts";
import { deriveSeed } from "../core/prng.ts";
import { type LrScheduleSpec } from "../core/schedule.ts";
import { RunPlan, type RunsSpec } from "../core/runs.ts";
import {
  DEFAULT_SPLIT_SEED,
  fitNormalisation,
  loadData,
  normalise,
} from "../stages/data/dataset.ts";
import { batchStream, checkSizes, probeBatch } from "../stages/data/loader.ts";
import type { Gpu } from "../shaders/gpu.ts";
import { initParams, type MlpLayout, mlpLayout } from "../stages/model.ts";
import { GpuTrainer } from "../stages/trainer.ts";
import { stepStage } from "../stages/step.ts";
import {
  monitorColumns,
  type MonitorOptions,
  monitorStage,
  type PairSummary,
  SummaryTracker,
} from "../stages/monitor.ts";
import { OutputClosedError, outputSink } from "../stages/sink.ts";
import { forwardBackward } from "../reference/trainer.ts";

/** Where the pipeline writes: data to `stdout`, everything else through `log`. */
export interface PipelineIO {
  stdout: WritableStream<Uint8Array>;
  /** One line to stderr. */
  log(line: string): void;
  /** A transient progress line (stderr when it is a terminal), or undefined for none. */
  progress?: (line: string) => void;
}

/** The final summary, printed on stderr and written to `--summary FILE` as JSON. */
export interface RunSummary {
  adapter: string;
  steps: number;
  seconds: number;
  steps_per_second: number;
  runs: string[];
  /** Each run against A (THEORY §7 max |Δsoftmax| on the probe batch). */
  pairs: Record<string, PairSummary>;
  /** Per run: last metered training loss and probe accuracy, held-out accuracy in eval mode. */
  final: Record<
    string,
    { train_loss: number | null; probe_acc: number | null; heldout_acc: number }
  >;
  rescales: number;
  /** True when stdout was closed early (the run stopped there). */
  output_closed: boolean;
}

/** |cos(grad, w)| over S above which the group is reported as not scale-invariant. */
export const GRAD_COS_WARNING = 1e-3;

/** Steps per epoch and the run's length: `--steps` if given (as many epochs as that takes), else `--epochs` epochs. */
export function plannedSteps(
  config: Config,
  trainExamples: number,
): { perEpoch: number; total: number; epochs: number } {
  const perEpoch = config["last-batch"] === "drop"
    ? Math.floor(trainExamples / config["batch-size"])
    : Math.ceil(trainExamples / config["batch-size"]);
  const total = config.steps > 0 ? config.steps : perEpoch * config.epochs;
  return { perEpoch, total, epochs: Math.ceil(total / perEpoch) };
}

/**
 * Startup checks of the plan that would otherwise fail mid-run: the whole schedule of run B
 * is computable (lr × wd not too large for the momentum: THEORY §3's c_t stays positive), no
 * run starts above `--rescale-above`, and no batch has a single example (BatchNorm needs two).
 */
export function checkPlan(
  config: Config,
  spec: RunsSpec,
  layout: MlpLayout,
  init: Float32Array,
  trainExamples: number,
): void {
  const dry = new RunPlan(spec);
  try {
    for (let t = 0; t < spec.schedule.totalSteps; t++) dry.next();
  } catch (e) {
    throw new ConfigError(`--lr/--wd/--momentum: at step ${dry.step - 1}: ${(e as Error).message}`);
  }
  for (let r = 0; r < spec.runs.length; r++) {
    const w = init.subarray(r * layout.size, r * layout.size + layout.sEnd);
    const norm = Math.sqrt(w.reduce((a, v) => a + v * v, 0));
    if (norm > config["rescale-above"]) {
      throw new ConfigError(
        `--rescale-above: ${config["rescale-above"]} is below run ${
          spec.runs[r]
        }'s initial S weight norm ${norm.toPrecision(4)}`,
      );
    }
  }
  if (config["last-batch"] === "keep" && trainExamples % config["batch-size"] === 1) {
    throw new ConfigError(
      `--last-batch: keep would leave a last batch of 1 example (${trainExamples} examples, batch ${
        config["batch-size"]
      }); BatchNorm needs 2`,
    );
  }
}

/** The run plan's spec from the configuration. */
export function runsSpec(config: Config, totalSteps: number): RunsSpec {
  const schedule: LrScheduleSpec = {
    base: config.lr,
    kind: config.schedule,
    milestones: config.milestones,
    factor: config["step-factor"],
    minFactor: config["min-lr-factor"],
    warmupSteps: config.warmup,
    warmupStartFactor: config["warmup-start"],
    totalSteps,
  };
  return {
    runs: config.runs,
    explr: config.explr,
    schedule,
    wd: config.wd,
    momentum: config.momentum,
    lrO: config["lr-o"] ?? config.lr,
    wdO: config["wd-o"] ?? config.wd,
    bnEps: config["bn-eps"],
    bnEpsMode: config["bn-eps-mode"],
    wdStyle: config["wd-style"],
  };
}

/**
 * Run-stacked float32 initial weights and momentum buffers of every run: one float64
 * initialisation from the seed (S weights × `initScale`), rounded to float32, then each run's
 * own multiplier applied in float32 (A1: × (1 + 2^-23), one ulp, as PyTorch would) and its
 * initial buffer over S (closed-form B: matched buffer).
 */
export function initialState(
  layout: MlpLayout,
  plan: RunPlan,
  seed: number,
  initScale: number,
): { params: Float32Array; bufs: Float32Array } {
  const base = Float32Array.from(
    initParams(layout, seed),
    (v, i) => (i < layout.sEnd ? v * initScale : v),
  );
  const R = plan.runs.length, P = layout.size;
  const params = new Float32Array(R * P), bufs = new Float32Array(R * P);
  for (let r = 0; r < R; r++) {
    const scale = Math.fround(plan.initialWeightScale(r)), factor = plan.initialBufferFactor(r);
    for (let i = 0; i < P; i++) params[r * P + i] = Math.fround(base[i] * scale);
    for (let i = 0; i < layout.sEnd; i++) bufs[r * P + i] = factor * params[r * P + i];
  }
  return { params, bufs };
}

/**
 * The startup check that the S/O tagging is right (THEORY §1): in float64, the logits with
 * every S tensor doubled equal the logits without, BatchNorm eps 0.
 */
export function checkScaleInvariance(
  layout: MlpLayout,
  params: Float32Array,
  x: Float32Array,
  rows: number,
): void {
  const y = new Int32Array(rows);
  const w = Float64Array.from(params.subarray(0, layout.size));
  const base = forwardBackward(layout, w, x, y, rows, 0).logits;
  for (let i = 0; i < layout.sEnd; i++) w[i] *= 2;
  const doubled = forwardBackward(layout, w, x, y, rows, 0).logits;
  let err = 0, norm = 0;
  for (let i = 0; i < base.length; i++) {
    err = Math.max(err, Math.abs(doubled[i] - base[i]));
    norm = Math.max(norm, Math.abs(base[i]));
  }
  if (!(err <= 1e-9 * Math.max(1, norm))) {
    throw new Error(`scale-invariance check failed: doubling group S changed the logits by ${err}`);
  }
}

/** Runs the whole job and returns its summary (also logged, and written with `--summary`). */
export async function runPipeline(config: Config, gpu: Gpu, io: PipelineIO): Promise<RunSummary> {
  const label = config["label-column"];
  const labelColumn = label !== undefined && /^-?\d+$/.test(label) ? Number(label) : label;
  const splits = await loadData({
    data: config.data,
    heldout: config.heldout,
    seed: DEFAULT_SPLIT_SEED,
    labelColumn,
  });
  checkSizes(splits, { batchSize: config["batch-size"], probe: config.probe });
  const { train, heldout } = splits;
  const norm = fitNormalisation(train);
  const trainX = normalise(train, norm), heldX = normalise(heldout, norm);
  const probe = probeBatch(heldX, heldout.y, train.dim, config.probe);
  const classes = Math.max(train.classes, heldout.classes);
  const layout = mlpLayout({
    dims: [train.dim, ...config.hidden, classes],
    affine: config["bn-affine"],
  });
  const { total: totalSteps, epochs } = plannedSteps(config, train.n);
  const spec = runsSpec(config, totalSteps);
  const plan = new RunPlan(spec);
  const init = initialState(layout, plan, deriveSeed(config.seed, "init"), config["init-scale"]);
  checkScaleInvariance(layout, init.params, probe.x, Math.min(probe.size, 64));
  checkPlan(config, spec, layout, init.params, train.n);
  io.log(
    `data: ${train.name} (${train.n} train, ${heldout.n} held out, ${train.dim} features, ${classes} classes); ` +
      `model ${
        layout.spec.dims.join("-")
      }, ${layout.size} parameters (${layout.sEnd} scale-invariant); ` +
      `runs ${config.runs.join(",")}; ${totalSteps} steps`,
  );

  const trainer = await GpuTrainer.create(
    gpu,
    {
      layout,
      runs: config.runs.length,
      batchRows: config["batch-size"],
      shortBatchRows: config["last-batch"] === "keep"
        ? train.n % config["batch-size"] || undefined
        : undefined,
      probe: { x: probe.x, y: probe.y, rows: probe.size },
      bnMomentum: config["bn-momentum"],
      runningStats: config["running-stats"],
      seed: deriveSeed(config.seed, "perturb"),
      inFlight: config["in-flight"],
    },
    init.params,
    init.bufs,
  );

  const monitorOpts: MonitorOptions = {
    runs: config.runs,
    layout: trainer.metrics,
    hiddenLayers: layout.hidden.length,
    probeRows: probe.size,
    perLayer: config["per-layer"],
  };
  const tracker = new SummaryTracker(config.runs);
  let rescales = 0;
  const started = performance.now();
  const warned = new Set<string>();
  const onStep = (v: Record<string, number | undefined>) => {
    for (const r of config.runs) {
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
    const rate = done / secs, eta = (totalSteps - done) / rate;
    io.progress(`step ${done}/${totalSteps}  ${rate.toFixed(2)} steps/s  ETA ${eta.toFixed(0)} s`);
  };
  let outputClosed = false;
  try {
    await batchStream(trainX, train.y, train.dim, {
      batchSize: config["batch-size"],
      epochs,
      shuffle: config.shuffle,
      seed: deriveSeed(config.seed, "shuffle"),
      lastBatch: config["last-batch"],
      maxSteps: totalSteps,
    })
      .pipeThrough(stepStage(trainer, plan, {
        runs: config.runs,
        every: config.every,
        totalSteps,
        evalEvery: config["eval-every"],
        inFlight: config["in-flight"],
        rescaleAbove: config["rescale-above"],
      }))
      .pipeThrough(monitorStage(monitorOpts, tracker, onStep))
      .pipeThrough(
        new TransformStream({
          transform(row, controller) {
            if (row.kind === "event") {
              rescales++;
              io.log(`step ${row.step}: rescaled run ${row.run} by ${row.factor} (Lemma 2)`);
            }
            controller.enqueue(row);
          },
        }),
      )
      .pipeTo(outputSink(io.stdout, config.format, monitorColumns(monitorOpts)));
  } catch (e) {
    if (!(e instanceof OutputClosedError)) throw e;
    outputClosed = true;
  }
  const seconds = (performance.now() - started) / 1000;
  await trainer.finish();

  const heldoutAcc = await heldoutAccuracy(
    trainer,
    heldX,
    heldout.y,
    layout,
    config.runs.length,
    probe.size,
  );
  const final: RunSummary["final"] = {};
  config.runs.forEach((r, i) => {
    final[r] = {
      train_loss: tracker.last[`${r}.loss`] ?? null,
      probe_acc: tracker.last[`${r}.probe_acc`] ?? null,
      heldout_acc: heldoutAcc[i],
    };
  });
  const summary: RunSummary = {
    adapter: gpu.adapterDescription,
    steps: tracker.steps,
    seconds,
    steps_per_second: tracker.steps / seconds,
    runs: config.runs,
    pairs: tracker.pairs,
    final,
    rescales,
    output_closed: outputClosed,
  };
  for (const line of summaryLines(summary)) io.log(line);
  if (config.summary) {
    await writeFileAtomic(config.summary, JSON.stringify(summary, null, 2) + "\n");
  }
  return summary;
}

/** Eval-mode accuracy of every run over the whole held-out split, in probe-sized chunks. */
async function heldoutAccuracy(
  trainer: GpuTrainer,
  x: Float32Array,
  y: Int32Array,
  layout: MlpLayout,
  runs: number,
  chunk: number,
): Promise<number[]> {
  const dim = layout.spec.dims[0], classes = layout.head.classes;
  const correct = new Array<number>(runs).fill(0);
  for (let start = 0; start < y.length; start += chunk) {
    const rows = Math.min(chunk, y.length - start);
    const logits = await trainer.evalLogits(x.slice(start * dim, (start + rows) * dim), rows);
    for (let r = 0; r < runs; r++) {
      for (let i = 0; i < rows; i++) {
        const row = logits.subarray((r * rows + i) * classes, (r * rows + i + 1) * classes);
        let arg = 0;
        for (let c = 1; c < classes; c++) if (row[c] > row[arg]) arg = c;
        if (arg === y[start + i]) correct[r]++;
      }
    }
  }
  return correct.map((c) => c / y.length);
}

/** The summary as stderr lines. */
export function summaryLines(s: RunSummary): string[] {
  const pct = (v: number | null) => (v === null ? "-" : `${(100 * v).toFixed(1)}%`);
  const lines = [
    `summary: ${s.steps} steps in ${s.seconds.toFixed(1)} s (${
      s.steps_per_second.toFixed(2)
    } steps/s) on ${s.adapter}` +
    (s.rescales ? `, ${s.rescales} rescales` : "") +
    (s.output_closed ? ", stopped: stdout closed" : ""),
  ];
  for (const [r, f] of Object.entries(s.final)) {
    lines.push(
      `  ${r.padEnd(2)}: held-out accuracy ${pct(f.heldout_acc)} (eval mode), probe accuracy ${
        pct(f.probe_acc)
      }, ` +
        `last train loss ${f.train_loss?.toFixed(4) ?? "-"}`,
    );
  }
  for (const [r, p] of Object.entries(s.pairs)) {
    const onsets = Object.entries(p.first_step_above).map(([t, step]) =>
      `>${t} at ${step ?? "never"}`
    ).join(", ");
    lines.push(
      `  A vs ${r}: max |Δsoftmax| ${p.max_dist_maxprob.toExponential(2)}, final ${
        p.final_dist_maxprob.toExponential(2)
      }; first step ${onsets}`,
    );
  }
  return lines;
}

/** Writes `text` to `path` through a temporary file and a rename, so no half-written file remains. */
async function writeFileAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}
