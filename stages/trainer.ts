/**
 * The GPU trainer: R runs of one model graph, weights stacked by run, trained in lockstep. It
 * holds the state buffers and executes the step program (`step_program.ts`): each step uploads
 * its batch and per-run scalars, encodes the phases the step asks for into one command buffer
 * (one compute pass per phase, GPU-timed with `profile`), and reads its results back through
 * one {@link ReadbackRing}. The CPU never waits on the step it just submitted.
 *
 * @module
 */

import {
  encodeDispatches,
  type Gpu,
  packRunScalars,
  readFloats,
  readReals,
  realBuffer,
  runScalarsBytes,
  storageBuffer,
  uploadBuffer,
  uploadReals,
} from "../shaders/gpu.ts";
import {
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
import { MetricsRecord } from "./metrics_record.ts";
import { ReadbackRing } from "./readback_ring.ts";
import { encodePhases, PhaseTimer } from "./phase_timer.ts";
import {
  buildStepProgram,
  type StepBuffers,
  type StepOptions,
  type StepPhase,
  type StepProgram,
} from "./step_program.ts";
import { initialRunningVar, STATE_ARRAYS, type StateArray, type TrainerState } from "./state.ts";
import { type DeviceLimits, dryBytes, dryGpu } from "../shaders/dry_gpu.ts";
import type { Tilings } from "../shaders/tilings.ts";

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
  /** Steps in flight on the GPU at most (the readback ring's slots). */
  inFlight: number;
  /** Time each phase of every step with GPU timestamps (needs `timestamp-query`). */
  profile?: boolean;
  /** Tuned kernel tilings (`--tune`; default tilings without). */
  tilings?: Tilings;
}

/** What one submitted step promises: its S weight norms always, its metrics when metered. */
export interface SubmittedStep {
  /** Per run, ||w_{t+1}|| over S after the update (float64 sum of the per-tensor norms²). */
  norms: Promise<number[]>;
  /** runs × record.words reals, on metered steps. */
  metrics?: Promise<Reals>;
  /** GPU nanoseconds of each phase that ran (with `profile`). */
  phases?: Promise<Partial<Record<StepPhase, number>>>;
}

/** The GPU memory of a trainer ({@link GpuTrainer.plannedMemory}), in bytes. */
export interface PlannedMemory {
  /** Every buffer. */
  bytes: number;
  /** The buffer planner's shared slots (every pass's activations, gradients, saved tensors). */
  pooledBytes: number;
}

/** What a trainer is built from: its buffers, the recorded step and the readback ring. */
export interface TrainerSetup {
  b: StepBuffers;
  record: MetricsRecord;
  program: StepProgram;
  ring: ReadbackRing;
}

/**
 * Allocates the trainer's buffers on `gpu` (a real one, or a dry one to size them) and records
 * its step.
 */
export function trainerSetup(gpu: Gpu, opts: TrainerOptions): TrainerSetup {
  const { layout, runs, batchRows, probe } = opts, precision = opts.precision ?? "f32";
  const reals = (n: number, label: string) => realBuffer(gpu, precision, n, label);
  const L = layout.sTensors.length, record = new MetricsRecord(L);
  const b: StepBuffers = {
    params: reals(runs * layout.size, "params"),
    grads: reals(runs * layout.size, "grads"),
    bufs: reals(runs * layout.size, "momentum"),
    runningMean: reals(runs * layout.statsSize, "running mean"),
    runningVar: reals(runs * layout.statsSize, "running var"),
    scalars: storageBuffer(gpu, runs * runScalarsBytes(precision) / 4, "run scalars"),
    x: reals(batchRows * layout.inputSize, "batch x"),
    labels: storageBuffer(gpu, batchRows, "batch labels"),
    probeX: uploadReals(gpu, precision, probe.x, "probe x"),
    probeLabels: uploadBuffer(gpu, Uint32Array.from(probe.y), "probe labels"),
    evalX: reals(probe.rows * layout.inputSize, "eval chunk x"),
    record: reals(runs * record.words, "metrics record"),
    sNorms: reals(runs * L, "S norms"),
  };
  const program = buildStepProgram(gpu, b, {
    precision,
    layout,
    runs,
    batchRows: [...new Set([batchRows, opts.shortBatchRows ?? batchRows])],
    probeRows: probe.rows,
    bnMomentum: opts.bnMomentum,
    runningStats: opts.runningStats,
    record,
    tilings: opts.tilings,
  });
  const ring = new ReadbackRing(gpu, precision, opts.inFlight, runs * (record.words + L));
  return { b, record, program, ring };
}

/** R runs of one model on the GPU; see the module comment. */
export class GpuTrainer {
  private readonly precision: Precision;
  private readonly program: StepProgram;
  private readonly b: StepBuffers;
  /** The metrics record the step writes: its named fields (`metrics_record.ts`). */
  readonly record: MetricsRecord;
  /** The bytes of the per-run scalar records, rewritten every step. */
  private readonly scalarWords: Uint32Array<ArrayBuffer>;
  /** df64 and f64: the batch as the buffer's reals, rewritten every step (f32 uploads x itself). */
  private readonly xReals?: Float32Array<ArrayBuffer> | Float64Array<ArrayBuffer>;
  private readonly ring: ReadbackRing;
  private readonly timer?: PhaseTimer;
  private submitted = 0;

  private constructor(
    private readonly gpu: Gpu,
    private readonly opts: TrainerOptions,
    setup: TrainerSetup,
    /** Every GPU buffer this trainer allocated, in bytes ({@link GpuTrainer.plannedMemory}). */
    readonly plannedBytes: number,
  ) {
    const { layout, runs } = opts;
    const precision = this.precision = opts.precision ?? "f32";
    ({ b: this.b, record: this.record, program: this.program, ring: this.ring } = setup);
    this.scalarWords = new Uint32Array(runs * runScalarsBytes(precision) / 4);
    if (precision !== "f32") this.xReals = realsBytes(precision, opts.batchRows * layout.inputSize);
    if (opts.profile) this.timer = new PhaseTimer(gpu);
  }

  /**
   * The GPU memory the trainer of `opts` needs, every buffer counted (WebGPU makes that exact),
   * sized on a dry GPU with `limits`: nothing is allocated. A buffer beyond the limits throws
   * the one-line error a real allocation would, naming the flags that shrink it.
   */
  static plannedMemory(opts: TrainerOptions, limits?: DeviceLimits): PlannedMemory {
    const dry = dryGpu(limits);
    const setup = trainerSetup(dry, opts);
    return { bytes: dryBytes(dry), pooledBytes: setup.program.pooledBytes };
  }

  /**
   * Builds the trainer and uploads the initial state: `params` and `bufs` are run-stacked
   * (runs × layout.size), rounded to the trainer's precision. Running means start at 0 and
   * running variances at 1 in plain units (so 1/||W_l||² in weight-norm units).
   */
  static async create(gpu: Gpu, opts: TrainerOptions, params: Reals, bufs: Reals) {
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
  static async restore(gpu: Gpu, opts: TrainerOptions, state: TrainerState, step: number) {
    const precision = opts.precision ?? "f32";
    // Sized first, so a step too large for the adapter is refused before any allocation.
    const { bytes } = GpuTrainer.plannedMemory(opts, gpu.device.limits);
    const t = new GpuTrainer(gpu, opts, trainerSetup(gpu, opts), bytes);
    for (const key of STATE_ARRAYS) {
      const bytes = encodeRealsExact(precision, state[key], state.lo?.[key]);
      // A model without BatchNorm has no running statistics (and Deno's wgpu panics on an
      // empty write).
      if (bytes.byteLength > 0) gpu.device.queue.writeBuffer(t.b[key], 0, bytes);
    }
    t.submitted = step;
    // The first forward reads each layer's norm (weight-norm running statistics).
    const encoder = gpu.device.createCommandEncoder();
    encodeDispatches(encoder, t.program.norms);
    gpu.submit([encoder.finish()]);
    await gpu.guard(gpu.device.queue.onSubmittedWorkDone());
    return t;
  }

  /** Steps submitted to the weights so far (a resumed trainer counts the checkpoint's). */
  get stepsDone(): number {
    return this.submitted;
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
    const { runs, layout } = this.opts, q = this.gpu.device.queue;
    const phases = this.program.phases(rows, {
      ...options,
      rescale: steps.some((s) => s.rescale !== 1),
    });
    const slot = await this.ring.acquire();
    const step = this.submitted++;
    const batch = x.subarray(0, rows * layout.inputSize);
    const host = this.xReals?.subarray(0, (this.xReals.length / this.opts.batchRows) * rows);
    q.writeBuffer(this.b.x, 0, encodeReals(this.precision, batch, host));
    // Labels are non-negative, so the Int32 bytes are already the u32 the kernels read.
    q.writeBuffer(this.b.labels, 0, y.buffer as ArrayBuffer, y.byteOffset, rows * 4);
    const records = steps.map((s) => ({ ...s, seed: this.opts.seed, step }));
    packRunScalars(this.precision, records, this.scalarWords);
    q.writeBuffer(this.b.scalars, 0, this.scalarWords);

    const encoder = this.gpu.device.createCommandEncoder();
    const timed = this.timer?.encode(encoder, phases) ?? encodePhases(encoder, phases);
    // The slot holds the record (metered steps), then the S norms.
    const bytes = realBytes(this.precision), M = runs * this.record.words;
    const normsAt = options.meter ? M : 0, L = layout.sTensors.length;
    if (options.meter) encoder.copyBufferToBuffer(this.b.record, 0, slot, 0, M * bytes);
    encoder.copyBufferToBuffer(this.b.sNorms, 0, slot, normsAt * bytes, runs * L * bytes);
    this.gpu.submit([encoder.finish()]);
    const read = this.ring.read(normsAt + runs * L);
    const norms = read.then((w) =>
      Array.from({ length: runs }, (_, r) => {
        let n2 = 0;
        for (let l = 0; l < L; l++) n2 += w[normsAt + r * L + l];
        return Math.sqrt(n2);
      })
    );
    return {
      norms,
      metrics: options.meter ? read.then((w) => w.subarray(0, M)) : undefined,
      phases: this.timer?.read(timed),
    };
  }

  /**
   * Eval-mode logits of every run for up to `probe.rows` examples (final held-out accuracy in
   * chunks; BatchNorm in eval mode makes chunking exact). Waits for the GPU.
   */
  async evalLogits(x: Float32Array, rows: number): Promise<Reals> {
    const { layout, runs, probe } = this.opts;
    if (rows > probe.rows) throw new Error(`eval chunk of ${rows} rows exceeds ${probe.rows}`);
    const pass = this.program.evalChunk();
    const padded = new Float32Array(probe.rows * layout.inputSize);
    padded.set(x.subarray(0, rows * layout.inputSize));
    this.gpu.device.queue.writeBuffer(this.b.evalX, 0, encodeReals(this.precision, padded));
    const encoder = this.gpu.device.createCommandEncoder();
    encodeDispatches(encoder, pass.forward);
    this.gpu.submit([encoder.finish()]);
    const { buffer, runStride } = pass.logits;
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
    const read = async (key: StateArray | "grads") => {
      const length = key === "runningMean" || key === "runningVar" ? layout.statsSize : layout.size;
      const raw = await readFloats(this.gpu, this.b[key], runs * length * words);
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
