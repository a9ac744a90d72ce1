/**
 * The GPU trainer: R runs of one model graph, weights stacked by run, trained in lockstep. Each step is
 * recorded into one command encoder and one `queue.submit`, one compute pass per phase
 * ({@link STEP_PHASES}): (optional Lemma-2 rescale) → forward → distances on the training
 * batch → backward → gradient metrics → SGD (+ A2 perturbation) → weight metrics → probe
 * forward and distances → copy of the metrics into a mappable ring slot. Nothing is allocated
 * and nothing is compiled per step; the CPU never waits on the step it just submitted. With
 * `profile`, every phase's pass writes GPU timestamps (bench --profile).
 *
 * @module
 */

import {
  type Dispatch,
  encodeDispatches,
  type Gpu,
  packRunScalars,
  readFloats,
  readReals,
  realBuffer,
  runScalarsBytes,
  storageBuffer,
  type TensorView,
  uploadBuffer,
  uploadReals,
} from "../shaders/gpu.ts";
import {
  decodeReals,
  decodeRealsExact,
  encodeReals,
  encodeRealsExact,
  newReals,
  type Precision,
  realBytes,
  type Reals,
  realsBytes,
} from "../shaders/precision.ts";
import type { ModelLayout } from "../core/graph.ts";
import type { RunStep } from "../core/runs.ts";
import { fusedSums, type FusedSumsSpec } from "../shaders/sums.ts";
import { sgdKernel } from "../shaders/sgd.ts";
import { perturbKernel, rescaleKernel, rescaleStatsKernel } from "../shaders/scale_s.ts";
import { PROBE_STATS, probeDistanceKernel } from "../shaders/probe_distance.ts";
import { type Pass, type PassBuffers, type PassMode, recordPass } from "./lowering.ts";

/**
 * Element offsets of one run's record in the per-step metrics buffer (reals of the trainer's
 * precision).
 */
export interface MetricsLayout {
  /** Elements per run (a multiple of 4). */
  words: number;
  loss: number;
  correct: number;
  /** Distances on the training batch, logits of w_t in training mode ({@link PROBE_STATS}). */
  batch: number;
  /** Probe distances in training mode ({@link PROBE_STATS} words). */
  probe: number;
  /** Probe distances in eval mode (running statistics). */
  evalProbe: number;
  /** ||w_t||² over S, before the update. */
  norm2Before: number;
  /** <grad, w_t> over S. */
  gradDotW: number;
  /** ||grad||² over S. */
  gradNorm2: number;
  /** ||w_{t+1}||² over S, after the update. */
  norm2: number;
  /** <w_{t+1}, w_{A,t+1}> over S. */
  dotA: number;
  /** ||w/|w| - w_A/|w_A|||² over S (angle to run A). */
  distA: number;
  /** ||w_{t+1}/|w_{t+1}| - w_t/|w_t|||² over S (angular update). */
  distPrev: number;
  /** Per S tensor ||W_l||² before the update. */
  layerNorm2Before: number;
  /** Per S tensor ||W_l||² after the update (BatchNorm's unit in weight-norm mode). */
  layerNorm2: number;
}

/** The metrics layout for `layers` S tensors. */
export function metricsLayout(layers: number): MetricsLayout {
  const batch = 2, probe = batch + PROBE_STATS.words, evalProbe = probe + PROBE_STATS.words;
  const scalars = evalProbe + PROBE_STATS.words;
  const layerNorm2Before = scalars + 7;
  const end = layerNorm2Before + 2 * layers;
  return {
    words: Math.ceil(end / 4) * 4,
    loss: 0,
    correct: 1,
    batch,
    probe,
    evalProbe,
    norm2Before: scalars,
    gradDotW: scalars + 1,
    gradNorm2: scalars + 2,
    norm2: scalars + 3,
    dotA: scalars + 4,
    distA: scalars + 5,
    distPrev: scalars + 6,
    layerNorm2Before,
    layerNorm2: layerNorm2Before + layers,
  };
}

/** What the trainer is built for. */
export interface TrainerOptions {
  /** The kernels' arithmetic (default f32; `--precision`). */
  precision?: Precision;
  layout: ModelLayout;
  runs: number;
  /** Largest training batch (buffers are sized for it). */
  batchRows: number;
  /** Rows of a smaller batch the run will also see (a kept last batch); its pass is built at setup. */
  shortBatchRows?: number;
  /** The fixed probe batch (normalised inputs), evaluated after every metered step. */
  probe: { x: Float32Array; y: Int32Array; rows: number };
  bnMomentum: number;
  runningStats: "weightnorm" | "plain";
  /** Seed of A2's perturbation stream. */
  seed: number;
  /** Steps in flight on the GPU at most (the readback ring has one slot more). */
  inFlight: number;
  /** Time each phase of every step with GPU timestamps (needs `timestamp-query`). */
  profile?: boolean;
}

/** The phases of a step, each its own compute pass (and row of `bench --profile`). */
export const STEP_PHASES = [
  "rescale",
  "forward",
  "batch distances",
  "backward",
  "gradient metrics",
  "optimizer",
  "weight metrics",
  "probe",
  "eval probe",
] as const;

/** One of {@link STEP_PHASES}. */
export type StepPhase = typeof STEP_PHASES[number];

/**
 * The training state of every run, run-stacked: what a checkpoint holds of the GPU. Read back,
 * it is float32 for an f32 trainer and float64 otherwise (df64 pairs joined), with each df64
 * pair's lo in `lo` so that it goes back bit for bit; given to a trainer, any numbers, rounded
 * to its precision (exactly restored with `lo`). Running statistics are in the trainer's units
 * (weight-norm or plain, `--running-stats`).
 */
export interface TrainerState {
  params: Reals;
  bufs: Reals;
  runningMean: Reals;
  runningVar: Reals;
  /** df64: the lo of every pair of each array (see `decodeRealsExact`). */
  lo?: Record<StateArray, Float32Array>;
}

/** The arrays of a {@link TrainerState}. */
export const STATE_ARRAYS = ["params", "bufs", "runningMean", "runningVar"] as const;

/** One of {@link STATE_ARRAYS}. */
export type StateArray = typeof STATE_ARRAYS[number];

/** What one submitted step promises: its S weight norms always, its metrics when metered. */
export interface SubmittedStep {
  /** Per run, ||w_{t+1}|| over S after the update (float64 sum of the per-tensor norms²). */
  norms: Promise<number[]>;
  /** runs × {@link MetricsLayout.words} reals, on metered steps. */
  metrics?: Promise<Reals>;
  /** GPU nanoseconds of each phase that ran (with `profile`). */
  phases?: Promise<Partial<Record<StepPhase, number>>>;
}

/** Per-step choices the pipeline makes. */
export interface StepOptions {
  /** Read the metrics back (with the distances on the training batch) at this step. */
  meter: boolean;
  /** Also evaluate the probe (training-mode BatchNorm, weights after the update); metered only. */
  probe: boolean;
  /** Also evaluate the probe in eval mode (running statistics); metered only. */
  evalMode: boolean;
}

/**
 * Initial running variances, run-stacked: 1 in plain units, so 1/||W_l||² for a BatchNorm
 * whose statistics are kept in units of its S tensor's norm (`--running-stats weightnorm`).
 */
export function initialRunningVar(opts: TrainerOptions, params: ArrayLike<number>): Reals {
  const { layout, runs } = opts;
  const rv = newReals(opts.precision ?? "f32", runs * layout.statsSize);
  for (let r = 0; r < runs; r++) {
    for (const bn of layout.batchNorms) {
      let n2 = 1;
      if (opts.runningStats === "weightnorm" && bn.unit !== undefined) {
        const t = layout.sTensors[bn.unit], base = r * layout.size + t.offset;
        n2 = 0;
        for (let i = 0; i < t.size; i++) n2 += params[base + i] ** 2;
      }
      const at = r * layout.statsSize + bn.offset;
      rv.fill(1 / n2, at, at + bn.features);
    }
  }
  return rv;
}

/** R runs of one model on the GPU; see the module comment for what one step records. */
export class GpuTrainer {
  readonly metrics: MetricsLayout;
  private readonly params: GPUBuffer;
  private readonly bufs: GPUBuffer;
  private readonly runningMean: GPUBuffer;
  private readonly runningVar: GPUBuffer;
  private readonly grads: GPUBuffer;
  private readonly prevS: GPUBuffer;
  private readonly scalars: GPUBuffer;
  private readonly precision: Precision;
  /** The bytes of the per-run scalar records, rewritten every step. */
  private readonly scalarWords: Uint32Array<ArrayBuffer>;
  /** df64 and f64: the batch as the buffer's reals, rewritten every step (f32 uploads x itself). */
  private readonly xReals?: Float32Array<ArrayBuffer> | Float64Array<ArrayBuffer>;
  private readonly metricsBuf: GPUBuffer;
  private readonly x: GPUBuffer;
  private readonly labels: GPUBuffer;
  private readonly evalX: GPUBuffer;
  private readonly trainPasses = new Map<number, Pass & { batchStats: Dispatch }>();
  private readonly probePass: Pass;
  private readonly evalProbePass: Pass;
  private evalChunkPass?: Pass;
  private readonly gradMetrics: Dispatch[];
  private readonly update: Dispatch;
  private readonly updateKeeping: Dispatch;
  private readonly weightMetrics: Dispatch[];
  private readonly rescale: Dispatch[];
  private readonly layerNorms: Dispatch[];
  private readonly perturb: Dispatch[];
  private readonly probeStats: Dispatch;
  private readonly timer?: { queries: GPUQuerySet; resolve: GPUBuffer; read: GPUBuffer };
  private readonly evalStats: Dispatch;
  private readonly ring: { buffer: GPUBuffer; metrics?: Promise<Reals> }[];
  /** Unmetered steps read back only the per-tensor norms² of S (Lemma-2 rescale decisions). */
  private readonly normRing: { buffer: GPUBuffer; norms?: Promise<number[]> }[];
  /** Completion of the submitted steps not yet waited for, oldest first. */
  private readonly pending: Promise<unknown>[] = [];
  private submitted = 0;

  private constructor(private readonly gpu: Gpu, private readonly opts: TrainerOptions) {
    const { layout, runs } = opts;
    const precision = this.precision = opts.precision ?? "f32";
    const P = layout.size, S = layout.sEnd, dim = layout.inputSize;
    this.metrics = metricsLayout(layout.sTensors.length);
    const M = this.metrics.words;
    const reals = (n: number, label: string) => realBuffer(gpu, precision, n, label);
    this.params = reals(runs * P, "params");
    this.grads = reals(runs * P, "grads");
    this.bufs = reals(runs * P, "momentum");
    this.prevS = reals(runs * S, "previous S weights");
    this.runningMean = reals(runs * layout.statsSize, "running mean");
    this.runningVar = reals(runs * layout.statsSize, "running var");
    this.scalarWords = new Uint32Array(runs * runScalarsBytes(precision) / 4);
    this.scalars = storageBuffer(gpu, this.scalarWords.length, "run scalars");
    this.metricsBuf = reals(runs * M, "metrics");
    this.x = reals(opts.batchRows * dim, "batch x");
    if (precision !== "f32") this.xReals = realsBytes(precision, opts.batchRows * dim);
    this.labels = storageBuffer(gpu, opts.batchRows, "batch labels");
    const probeX = uploadReals(gpu, precision, opts.probe.x, "probe x");
    const probeLabels = uploadBuffer(gpu, Uint32Array.from(opts.probe.y), "probe labels");
    this.evalX = reals(opts.probe.rows * dim, "eval chunk x");

    const m = (field: number): TensorView => ({
      buffer: this.metricsBuf,
      offset: field,
      runStride: M,
    });
    const all = (buffer: GPUBuffer, offset = 0): TensorView => ({ buffer, offset, runStride: P });
    const sView = all(this.params), gView = all(this.grads);
    // Group S leads every run's flat vector, tensor after tensor (core/graph.ts).
    const segments = layout.sTensors.map((t) => t.size);
    if (
      layout.sTensors.some((t, l) => t.offset !== segments.slice(0, l).reduce((a, b) => a + b, 0))
    ) {
      throw new Error("group S is not contiguous from offset 0");
    }
    const sums = (spec: Omit<FusedSumsSpec, "precision" | "runs" | "segments">) =>
      fusedSums(gpu, { precision, runs, segments, ...spec });
    const distances = (pass: Pass, labels: GPUBuffer, out: number) =>
      probeDistanceKernel(gpu, {
        precision,
        runs,
        rows: pass.rows,
        classes: layout.classes,
        logits: pass.logits,
        labels,
        out: m(out),
      });
    for (const rows of new Set([opts.batchRows, opts.shortBatchRows ?? opts.batchRows])) {
      const pass = this.buildPass(rows, this.x, "train");
      this.trainPasses.set(rows, {
        ...pass,
        batchStats: distances(pass, this.labels, this.metrics.batch),
      });
    }
    this.probePass = this.buildPass(opts.probe.rows, probeX, "probe");
    this.evalProbePass = this.buildPass(opts.probe.rows, probeX, "eval");
    this.probeStats = distances(this.probePass, probeLabels, this.metrics.probe);
    this.evalStats = distances(this.evalProbePass, probeLabels, this.metrics.evalProbe);
    if (opts.profile) {
      if (!gpu.timestamps) throw new Error("profiling needs the adapter's timestamp-query");
      const count = 2 * STEP_PHASES.length;
      this.timer = {
        queries: gpu.device.createQuerySet({ type: "timestamp", count }),
        resolve: gpu.device.createBuffer({
          size: count * 8,
          usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
        }),
        read: gpu.device.createBuffer({
          size: count * 8,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        }),
      };
    }

    const mt = this.metrics;
    const sA: TensorView = { buffer: this.params, offset: 0, runStride: 0 };
    const prev: TensorView = { buffer: this.prevS, offset: 0, runStride: S };
    const ww = { kind: "dot", a: "w", b: "w" } as const;
    // Consecutive metrics words: norm2Before, gradDotW, gradNorm2; norm2, dotA; distA, distPrev.
    this.gradMetrics = sums({
      vectors: { w: sView, g: gView },
      terms: [ww, { kind: "dot", a: "g", b: "w" }, { kind: "dot", a: "g", b: "g" }],
      out: m(mt.norm2Before),
      layers: m(mt.layerNorm2Before),
    });
    const sgd = (previous?: TensorView) =>
      sgdKernel(gpu, {
        precision,
        runs,
        size: P,
        sEnd: S,
        params: sView,
        grads: gView,
        bufs: all(this.bufs),
        scalars: this.scalars,
        previous,
      });
    this.update = sgd();
    // Metered steps keep S's weights before the update, for the angular update.
    this.updateKeeping = sgd(prev);
    this.weightMetrics = [
      ...sums({
        vectors: { w: sView, wA: sA },
        terms: [ww, { kind: "dot", a: "w", b: "wA" }],
        out: m(mt.norm2),
        layers: m(mt.layerNorm2),
      }),
      // Needs the norms just written: a second pass.
      ...sums({
        vectors: { w: sView, wA: sA, prev },
        norms: {
          w: m(mt.norm2),
          wA: { buffer: this.metricsBuf, offset: mt.norm2, runStride: 0 },
          prev: m(mt.norm2Before),
        },
        terms: [
          { kind: "distance", a: "w", b: "wA", aNorm2: "w", bNorm2: "wA" },
          { kind: "distance", a: "w", b: "prev", aNorm2: "w", bNorm2: "prev" },
        ],
        out: m(mt.distA),
      }),
    ];
    this.layerNorms = sums({
      vectors: { w: sView },
      terms: [ww],
      out: m(mt.norm2),
      layers: m(mt.layerNorm2),
    });
    // Weight-norm running statistics are invariant under Lemma 2; plain ones scale with s.
    const stats = (buffer: GPUBuffer): TensorView => ({
      buffer,
      offset: 0,
      runStride: layout.statsSize,
    });
    const plainStats = opts.runningStats === "plain"
      ? [rescaleStatsKernel(gpu, {
        precision,
        runs,
        size: layout.statsSize,
        mean: stats(this.runningMean),
        var: stats(this.runningVar),
        scalars: this.scalars,
      })]
      : [];
    this.rescale = [
      rescaleKernel(gpu, {
        precision,
        runs,
        sEnd: S,
        params: sView,
        bufs: all(this.bufs),
        scalars: this.scalars,
      }),
      ...plainStats,
      ...this.layerNorms,
    ];
    this.perturb = [
      perturbKernel(gpu, { precision, runs, sEnd: S, params: sView, scalars: this.scalars }),
    ];
    const readback = (elements: number, label: string) =>
      Array.from({ length: opts.inFlight + 1 }, () => ({
        buffer: gpu.device.createBuffer({
          size: elements * realBytes(precision),
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
          label,
        }),
      }));
    this.ring = readback(runs * M, "metrics readback");
    this.normRing = readback(runs * layout.sTensors.length, "norms readback");
  }

  /**
   * Builds the trainer and uploads the initial state: `params` and `bufs` are run-stacked
   * (runs × layout.size), rounded to the trainer's precision. Running means start at 0 and
   * running variances at 1 in plain units (so 1/||W_l||² in weight-norm units).
   */
  static async create(
    gpu: Gpu,
    opts: TrainerOptions,
    params: Reals,
    bufs: Reals,
  ): Promise<GpuTrainer> {
    return await GpuTrainer.restore(gpu, opts, {
      params,
      bufs,
      runningMean: newReals(opts.precision ?? "f32", opts.runs * opts.layout.statsSize),
      runningVar: initialRunningVar(opts, params),
    }, 0);
  }

  /**
   * Builds the trainer from a checkpointed state; `step` is the next step's index (A2's
   * perturbation stream is keyed on it).
   */
  static async restore(
    gpu: Gpu,
    opts: TrainerOptions,
    state: TrainerState,
    step: number,
  ): Promise<GpuTrainer> {
    const t = new GpuTrainer(gpu, opts);
    const q = gpu.device.queue;
    for (const key of STATE_ARRAYS) {
      q.writeBuffer(t[key], 0, encodeRealsExact(t.precision, state[key], state.lo?.[key]));
    }
    t.submitted = step;
    // The first forward reads each layer's norm (weight-norm running statistics).
    const encoder = gpu.device.createCommandEncoder();
    encodeDispatches(encoder, t.layerNorms);
    q.submit([encoder.finish()]);
    await gpu.guard(q.onSubmittedWorkDone());
    return t;
  }

  /** Steps submitted to the weights so far (a resumed trainer counts the checkpoint's). */
  get stepsDone(): number {
    return this.submitted;
  }

  /** Records the graph at `rows` rows reading `input` (stages/lowering.ts). */
  private buildPass(rows: number, input: GPUBuffer, mode: PassMode): Pass {
    const { layout, runs } = this.opts;
    const M = this.metrics.words;
    const buffers: PassBuffers = {
      precision: this.precision,
      layout,
      runs,
      input,
      labels: this.labels,
      params: this.params,
      grads: this.grads,
      scalars: this.scalars,
      lossStats: { buffer: this.metricsBuf, offset: this.metrics.loss, runStride: M },
      runningMean: this.runningMean,
      runningVar: this.runningVar,
      bnMomentum: this.opts.bnMomentum,
      unitNorm2: this.opts.runningStats === "weightnorm"
        ? (i) => ({ buffer: this.metricsBuf, offset: this.metrics.layerNorm2 + i, runStride: M })
        : undefined,
    };
    return recordPass(this.gpu, buffers, rows, mode);
  }

  /** The plan's float64 per-run values, sent in the trainer's precision (df64: as pairs). */
  private writeScalars(steps: RunStep[], step: number): void {
    const records = steps.map((s) => ({ ...s, seed: this.opts.seed, step }));
    packRunScalars(this.precision, records, this.scalarWords);
    this.gpu.device.queue.writeBuffer(this.scalars, 0, this.scalarWords);
  }

  /**
   * Records and submits one training step of every run on batch (x, y) with the plan's
   * per-run values. Returns at once with promises of the step's S weight norms and, with
   * `meter`, its metrics, resolved when the GPU has finished it. Waits only while `inFlight`
   * earlier steps are still on the GPU.
   */
  async submitStep(
    x: Float32Array,
    y: Int32Array,
    rows: number,
    steps: RunStep[],
    options: StepOptions,
  ): Promise<SubmittedStep> {
    const { device } = this.gpu, q = device.queue;
    const pass = this.trainPasses.get(rows);
    if (!pass) {
      throw new Error(
        `no training pass for batches of ${rows} rows (built: ${[...this.trainPasses.keys()]})`,
      );
    }
    // Bound the steps queued on the GPU (metered or not), so the CPU runs at most `inFlight`
    // steps ahead and never waits on the step it just submitted.
    while (this.pending.length >= this.opts.inFlight) await this.pending.shift();
    const slot = options.meter ? this.ring[this.submitted % this.ring.length] : undefined;
    const normSlot = slot ? undefined : this.normRing[this.submitted % this.normRing.length];
    if (slot?.metrics) await slot.metrics;
    if (normSlot?.norms) await normSlot.norms;
    const step = this.submitted++;
    const dim = this.opts.layout.inputSize;
    const batch = x.subarray(0, rows * dim);
    // The host reals of `rows` examples (a df64 element is two float32).
    const host = this.xReals?.subarray(0, (this.xReals.length / this.opts.batchRows) * rows);
    q.writeBuffer(this.x, 0, encodeReals(this.precision, batch, host));
    // Labels are non-negative, so the Int32 bytes are already the u32 the kernels read.
    q.writeBuffer(this.labels, 0, y.buffer as ArrayBuffer, y.byteOffset, rows * 4);
    this.writeScalars(steps, step);

    const encoder = device.createCommandEncoder();
    const { runs, layout } = this.opts, M = this.metrics.words, L = layout.sTensors.length;
    const bytes = realBytes(this.precision);
    const rescaling = steps.some((s) => s.rescale !== 1);
    const perturbing = steps.some((s) => s.perturb !== 0);
    const phases: [StepPhase, Dispatch[]][] = [
      ["rescale", rescaling ? this.rescale : []],
      ["forward", pass.forward],
      ["batch distances", slot ? [pass.batchStats] : []],
      ["backward", pass.backward],
      ["gradient metrics", slot ? this.gradMetrics : []],
      ["optimizer", [slot ? this.updateKeeping : this.update, ...(perturbing ? this.perturb : [])]],
      // The per-tensor norms: rescale decisions, and weight-norm BatchNorm's units.
      ["weight metrics", slot ? this.weightMetrics : this.layerNorms],
      ["probe", slot && options.probe ? [...this.probePass.forward, this.probeStats] : []],
      [
        "eval probe",
        slot && options.evalMode ? [...this.evalProbePass.forward, this.evalStats] : [],
      ],
    ];
    const timed: StepPhase[] = [];
    for (const [phase, dispatches] of phases) {
      if (dispatches.length === 0) continue;
      const at = 2 * timed.length;
      encodeDispatches(
        encoder,
        dispatches,
        this.timer && {
          querySet: this.timer.queries,
          beginningOfPassWriteIndex: at,
          endOfPassWriteIndex: at + 1,
        },
      );
      timed.push(phase);
    }
    if (this.timer) {
      encoder.resolveQuerySet(this.timer.queries, 0, 2 * timed.length, this.timer.resolve, 0);
      encoder.copyBufferToBuffer(this.timer.resolve, 0, this.timer.read, 0, this.timer.read.size);
    }
    if (slot) encoder.copyBufferToBuffer(this.metricsBuf, 0, slot.buffer, 0, slot.buffer.size);
    else {
      for (let r = 0; r < runs; r++) {
        const from = (r * M + this.metrics.layerNorm2) * bytes;
        encoder.copyBufferToBuffer(
          this.metricsBuf,
          from,
          normSlot!.buffer,
          r * L * bytes,
          L * bytes,
        );
      }
    }
    q.submit([encoder.finish()]);
    const read = (buffer: GPUBuffer) =>
      this.gpu.guard(buffer.mapAsync(GPUMapMode.READ)).then(() => {
        const out = decodeReals(this.precision, buffer.getMappedRange().slice(0));
        buffer.unmap();
        return out;
      });
    const sNorms = (words: Reals, stride: number, first: number) =>
      Array.from({ length: runs }, (_, r) => {
        let n2 = 0;
        for (let l = 0; l < L; l++) n2 += words[r * stride + first + l];
        return Math.sqrt(n2);
      });
    const phaseTimes = this.timer && this.readPhases(timed);
    if (!slot) {
      const norms = read(normSlot!.buffer).then((w) => sNorms(w, L, 0));
      normSlot!.norms = norms;
      this.pending.push(norms);
      return { norms, phases: phaseTimes };
    }
    const metrics = read(slot.buffer);
    slot.metrics = metrics;
    this.pending.push(metrics);
    return {
      metrics,
      norms: metrics.then((m) => sNorms(m, M, this.metrics.layerNorm2)),
      phases: phaseTimes,
    };
  }

  /** The phases' GPU times of the step just submitted (profiling; waits for that step). */
  private async readPhases(timed: StepPhase[]): Promise<Partial<Record<StepPhase, number>>> {
    const read = this.timer!.read;
    await this.gpu.guard(read.mapAsync(GPUMapMode.READ));
    const ticks = new BigUint64Array(read.getMappedRange().slice(0));
    read.unmap();
    const out: Partial<Record<StepPhase, number>> = {};
    timed.forEach((phase, i) => (out[phase] = Number(ticks[2 * i + 1] - ticks[2 * i])));
    return out;
  }

  /**
   * Eval-mode logits of every run for up to `probe.rows` examples (final held-out accuracy in
   * chunks; BatchNorm in eval mode makes chunking exact). Waits for the GPU.
   */
  async evalLogits(x: Float32Array, rows: number): Promise<Reals> {
    const { layout, runs, probe } = this.opts;
    if (rows > probe.rows) throw new Error(`eval chunk of ${rows} rows exceeds ${probe.rows}`);
    this.evalChunkPass ??= this.buildPass(probe.rows, this.evalX, "eval");
    const padded = new Float32Array(probe.rows * layout.inputSize);
    padded.set(x.subarray(0, rows * layout.inputSize));
    this.gpu.device.queue.writeBuffer(this.evalX, 0, encodeReals(this.precision, padded));
    const encoder = this.gpu.device.createCommandEncoder();
    encodeDispatches(encoder, this.evalChunkPass.forward);
    this.gpu.submit([encoder.finish()]);
    const { buffer, runStride } = this.evalChunkPass.logits;
    const all = await readReals(this.gpu, this.precision, buffer, runs * runStride);
    const classes = layout.classes, out = newReals(this.precision, runs * rows * classes);
    for (let r = 0; r < runs; r++) {
      out.set(all.subarray(r * runStride, r * runStride + rows * classes), r * rows * classes);
    }
    return out;
  }

  /**
   * Reads the whole training state back, with the last gradients (checkpoints and tests;
   * waits for the GPU). Run-stacked arrays.
   */
  async readState(): Promise<TrainerState & { grads: Reals }> {
    const { layout, runs } = this.opts;
    const words = realBytes(this.precision) / 4;
    const length: Record<StateArray | "grads", number> = {
      params: layout.size,
      bufs: layout.size,
      grads: layout.size,
      runningMean: layout.statsSize,
      runningVar: layout.statsSize,
    };
    const read = async (key: StateArray | "grads") => {
      const raw = await readFloats(this.gpu, this[key], runs * length[key] * words);
      return decodeRealsExact(this.precision, raw.buffer as ArrayBuffer);
    };
    const state = { grads: (await read("grads")).values } as TrainerState & { grads: Reals };
    const lo = {} as Record<StateArray, Float32Array>;
    for (const key of STATE_ARRAYS) {
      const { values, lo: pairsLo } = await read(key);
      state[key] = values;
      if (pairsLo) lo[key] = pairsLo;
    }
    if (this.precision === "df64") state.lo = lo;
    return state;
  }

  /** Waits for all submitted work (tests and the final summary). */
  async finish(): Promise<void> {
    await this.gpu.guard(this.gpu.device.queue.onSubmittedWorkDone());
  }
}
