/**
 * The training step, declared once: the named phases a step runs, each a list of dispatches
 * recorded at setup over the trainer's state buffers, and the metrics record they write
 * (`metrics_record.ts`). The trainer only uploads a batch, encodes the phases a step asks for and
 * reads back (`trainer.ts`); nothing is allocated or compiled per step. The passes' transient
 * tensors live in the buffer planner's shared slots ({@link planPasses}).
 *
 * A step: (rescale: Lemma 2, then S's norms again) → forward → distances on the training batch →
 * backward → optimizer (SGD, A2's perturbation, and the monitor's sums in the same pass) →
 * probe forward and distances → eval-mode probe forward and distances.
 *
 * @module
 */

import {
  type Dispatch,
  type Gpu,
  realBuffer,
  storageBuffer,
  type TensorView,
} from "../shaders/gpu.ts";
import { type Precision, realBytes } from "../shaders/precision.ts";
import type { ModelLayout } from "../core/graph.ts";
import { fusedSums } from "../shaders/sums.ts";
import { sgdKernel } from "../shaders/sgd.ts";
import { rescaleKernel, rescaleStatsKernel } from "../shaders/scale_s.ts";
import { probeDistanceKernel } from "../shaders/probe_distance.ts";
import { type Pass, type PassMode, recordPass, type TensorAllocator } from "./lowering.ts";
import { planBuffers } from "../core/buffer_plan.ts";
import { boundBuffers, dryGpu } from "../shaders/dry_gpu.ts";
import type { MetricsRecord, RecordWriter } from "./metrics_record.ts";
import type { Tilings } from "../shaders/tilings.ts";

/** The phases of a step in order, each its own compute pass (and row of `bench --profile`). */
export const STEP_PHASES = [
  "rescale",
  "forward",
  "batch distances",
  "backward",
  "optimizer",
  "probe",
  "eval probe",
] as const;

/** One of {@link STEP_PHASES}. */
export type StepPhase = typeof STEP_PHASES[number];

/** What one step runs besides its forward, backward and update. */
export interface StepOptions {
  /** Read the metrics back (with the distances on the training batch) at this step. */
  meter: boolean;
  /** Also evaluate the probe (training-mode BatchNorm, weights after the update); metered only. */
  probe: boolean;
  /** Also evaluate the probe in eval mode (running statistics); metered only. */
  evalMode: boolean;
}

/** The GPU state a program reads and writes (the trainer owns it). */
export interface StepBuffers {
  params: GPUBuffer;
  grads: GPUBuffer;
  bufs: GPUBuffer;
  runningMean: GPUBuffer;
  runningVar: GPUBuffer;
  /** `array<RunScalars>`, rewritten every step. */
  scalars: GPUBuffer;
  /** The training batch's inputs and labels (sized for the largest batch). */
  x: GPUBuffer;
  labels: GPUBuffer;
  probeX: GPUBuffer;
  probeLabels: GPUBuffer;
  /** The held-out chunk's inputs (probe rows). */
  evalX: GPUBuffer;
  /** runs × record.words reals. */
  record: GPUBuffer;
  /** runs × S tensors reals: each S tensor's squared norm of the current weights. */
  sNorms: GPUBuffer;
}

/** What a program is built for. */
export interface ProgramOptions {
  precision: Precision;
  layout: ModelLayout;
  runs: number;
  /** Row counts of the training batches the run will see (a kept short last batch too). */
  batchRows: number[];
  probeRows: number;
  bnMomentum: number;
  runningStats: "weightnorm" | "plain";
  /** The record the phases write (`StepBuffers.record` holds runs of it). */
  record: MetricsRecord;
  /** Tuned kernel tilings (default tilings without). */
  tilings?: Tilings;
}

/** The recorded step. */
export interface StepProgram {
  /** The phases a step of `rows` rows runs, in order, with their dispatches. */
  phases(rows: number, options: StepOptions & { rescale: boolean }): [StepPhase, Dispatch[]][];
  /** Writes each S tensor's squared norm of the current weights (after a restore). */
  norms: Dispatch[];
  /** The eval-mode pass over the held-out chunk buffer. */
  evalChunk(): Pass;
  /** Bytes of the buffer planner's shared slots (every pass's transient tensors). */
  pooledBytes: number;
}

/** How a program's builders see the buffers: views into the record and the state. */
interface Views {
  gpu: Gpu;
  b: StepBuffers;
  opts: ProgramOptions;
  record: MetricsRecord;
  /** S's tensor lengths, contiguous from element 0. */
  segments: number[];
  /** The record's group that `writer` fills, per run. */
  at(writer: RecordWriter): TensorView;
  /** A whole run-stacked buffer (parameters by default). */
  all(buffer: GPUBuffer, runStride?: number): TensorView;
  sNorms: TensorView;
}

/** The views of `b` for `opts`; checks that S leads every run's vector, tensor after tensor. */
function views(gpu: Gpu, b: StepBuffers, opts: ProgramOptions): Views {
  const { layout } = opts;
  const { record } = opts;
  const segments = layout.sTensors.map((t) => t.size);
  let at = 0;
  for (const t of layout.sTensors) {
    if (t.offset !== at) throw new Error("group S is not contiguous from offset 0");
    at += t.size;
  }
  const L = segments.length;
  return {
    gpu,
    b,
    opts,
    record,
    segments,
    at: (writer) => ({ buffer: b.record, offset: record.start(writer), runStride: record.words }),
    all: (buffer, runStride = layout.size) => ({ buffer, offset: 0, runStride }),
    sNorms: { buffer: b.sNorms, offset: 0, runStride: L },
  };
}

/** The graph recorded as a pass of `rows` rows reading `input` (stages/lowering.ts). */
function pass(
  v: Views,
  rows: number,
  input: GPUBuffer,
  mode: PassMode,
  allocate?: TensorAllocator,
): Pass {
  const { b, opts } = v, L = v.segments.length;
  return recordPass(
    v.gpu,
    {
      precision: opts.precision,
      layout: opts.layout,
      runs: opts.runs,
      input,
      labels: b.labels,
      params: b.params,
      grads: b.grads,
      scalars: b.scalars,
      lossStats: v.at("loss"),
      runningMean: b.runningMean,
      runningVar: b.runningVar,
      bnMomentum: opts.bnMomentum,
      tilings: opts.tilings,
      unitNorm2: opts.runningStats === "weightnorm"
        ? (i) => ({ buffer: b.sNorms, offset: i, runStride: L })
        : undefined,
    },
    rows,
    mode,
    allocate,
  );
}

/** A pass of the step: its rows, the input it reads and its mode. */
interface PassSpec {
  rows: number;
  input: GPUBuffer;
  mode: PassMode;
}

/**
 * The buffer planner: records every pass once on a dry GPU (shaders/dry_gpu.ts) to learn the
 * first and last dispatch that binds each transient tensor, places them in shared slots
 * (core/buffer_plan.ts), allocates the slots, and returns each pass's allocator, which hands out
 * the slots in the order the walker asks for tensors (the same order as in the dry recording).
 */
function planPasses(
  v: Views,
  specs: PassSpec[],
): { allocators: TensorAllocator[]; bytes: number } {
  const { precision } = v.opts;
  const dry = dryGpu(v.gpu.device.limits);
  // Tilings never change what a dispatch binds; the planning passes' views are not the step's.
  const dryViews = { ...v, gpu: dry, opts: { ...v.opts, tilings: undefined } };
  const lifetimes = specs.map((spec) => {
    const tensors: GPUBuffer[] = [];
    const p = pass(dryViews, spec.rows, spec.input, spec.mode, (elements, label) => {
      const t = realBuffer(dry, precision, elements, label);
      tensors.push(t);
      return t;
    });
    const index = new Map(tensors.map((t, i) => [t, i]));
    const span = tensors.map((t) => ({ bytes: t.size, start: 0, end: 0, bound: false }));
    [...p.forward, ...p.backward].forEach((d, at) => {
      for (const buffer of boundBuffers(d)) {
        const i = index.get(buffer);
        if (i === undefined) continue;
        const s = span[i];
        if (!s.bound) (s.start = at), (s.bound = true);
        s.end = at;
      }
    });
    return span;
  });
  const plan = planBuffers(lifetimes);
  const slots = plan.slotBytes.map((bytes, i) =>
    storageBuffer(v.gpu, bytes / 4, `activations and gradients, slot ${i}`)
  );
  const allocators = plan.slotOf.map((slotOf, p) => {
    let k = 0;
    return (elements: number) => {
      const slot = slots[slotOf[k]];
      if (k >= slotOf.length || elements * realBytes(precision) > slot.size) {
        throw new Error(`buffer plan: pass ${p} asked for tensor ${k} unlike its dry recording`);
      }
      k++;
      return slot;
    };
  });
  return { allocators, bytes: slots.reduce((sum, slot) => sum + slot.size, 0) };
}

/** The distances of `p`'s logits against run A's into `writer`'s group of the record. */
function distances(v: Views, p: Pass, labels: GPUBuffer, writer: RecordWriter): Dispatch {
  return probeDistanceKernel(v.gpu, {
    precision: v.opts.precision,
    runs: v.opts.runs,
    rows: p.rows,
    classes: v.opts.layout.classes,
    logits: p.logits,
    labels,
    out: v.at(writer),
    correct: writer !== "batch distances",
  });
}

/** The optimizer pass, with the monitor's sums when `monitor`. */
function optimizer(v: Views, monitor: boolean): Dispatch[] {
  const { b, opts } = v;
  return sgdKernel(v.gpu, {
    precision: opts.precision,
    runs: opts.runs,
    size: opts.layout.size,
    segments: v.segments,
    params: v.all(b.params),
    grads: v.all(b.grads),
    bufs: v.all(b.bufs),
    scalars: b.scalars,
    sNorms: v.sNorms,
    monitor: monitor
      ? { totals: v.at("optimizer"), layerNorm2Before: v.at("optimizer (per tensor)") }
      : undefined,
  });
}

/** Each S tensor's squared norm of the current weights, into `sNorms`. */
function sNormsOf(v: Views): Dispatch[] {
  return fusedSums(v.gpu, {
    precision: v.opts.precision,
    runs: v.opts.runs,
    segments: v.segments,
    vectors: { w: v.all(v.b.params) },
    terms: [{ a: "w", b: "w" }],
    layers: v.sNorms,
  });
}

/** Lemma 2 on S (and on plain running statistics, which scale with s), then S's norms again. */
function rescale(v: Views, norms: Dispatch[]): Dispatch[] {
  const { gpu, b, opts } = v, { precision, runs, layout } = opts;
  // Weight-norm running statistics are invariant under Lemma 2; plain ones scale with s.
  const stats = opts.runningStats === "plain"
    ? [rescaleStatsKernel(gpu, {
      precision,
      runs,
      size: layout.statsSize,
      mean: v.all(b.runningMean, layout.statsSize),
      var: v.all(b.runningVar, layout.statsSize),
      scalars: b.scalars,
    })]
    : [];
  const s = rescaleKernel(gpu, {
    precision,
    runs,
    sEnd: layout.sEnd,
    params: v.all(b.params),
    bufs: v.all(b.bufs),
    scalars: b.scalars,
  });
  return [s, ...stats, ...norms];
}

/** Records the step of `opts` over `b`. */
export function buildStepProgram(gpu: Gpu, b: StepBuffers, opts: ProgramOptions): StepProgram {
  const v = views(gpu, b, opts);
  const specs: PassSpec[] = [
    ...opts.batchRows.map((rows): PassSpec => ({ rows, input: b.x, mode: "train" })),
    { rows: opts.probeRows, input: b.probeX, mode: "probe" },
    { rows: opts.probeRows, input: b.probeX, mode: "eval" },
    { rows: opts.probeRows, input: b.evalX, mode: "eval" },
  ];
  const { allocators, bytes: pooledBytes } = planPasses(v, specs);
  const passes = specs.map((spec, i) => pass(v, spec.rows, spec.input, spec.mode, allocators[i]));
  const [probe, evalProbe, evalChunk] = passes.slice(opts.batchRows.length);
  const train = new Map(opts.batchRows.map((rows, i) => {
    const p = passes[i];
    return [rows, { ...p, batchStats: distances(v, p, b.labels, "batch distances") }];
  }));
  const probePhase = [...probe.forward, distances(v, probe, b.probeLabels, "probe distances")];
  const evalPhase = [
    ...evalProbe.forward,
    distances(v, evalProbe, b.probeLabels, "eval distances"),
  ];
  const update = optimizer(v, false), metered = optimizer(v, true);
  const norms = sNormsOf(v), lemma2 = rescale(v, norms);
  return {
    norms,
    pooledBytes,
    evalChunk: () => evalChunk,
    phases(rows, o) {
      const t = train.get(rows);
      if (!t) {
        throw new Error(
          `no training pass for batches of ${rows} rows (built: ${[...train.keys()]})`,
        );
      }
      return [
        ["rescale", o.rescale ? lemma2 : []],
        ["forward", t.forward],
        ["batch distances", o.meter ? [t.batchStats] : []],
        ["backward", t.backward],
        ["optimizer", o.meter ? metered : update],
        ["probe", o.meter && o.probe ? probePhase : []],
        ["eval probe", o.meter && o.evalMode ? evalPhase : []],
      ];
    },
  };
}
