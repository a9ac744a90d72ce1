/**
 * Checkpoints: the whole training state of every run in one `.safetensors` file (readable by
 * PyTorch, NumPy and the `safetensors` libraries), and the stage that writes them.
 *
 * Tensor names, per run (`A`, `B`, ...), one to one onto a PyTorch `state_dict` of the same
 * model (module names as in `core/models.ts`):
 * - `A/<module>.weight`, `A/<module>.bias`: parameters in PyTorch's layout (Linear
 *   `[out, in]`, Conv2d `[out, in, kh, kw]`; the trainer keeps `[in, out]` and
 *   `[(kh*K + kw)*Cin + ci, out]`, so they are transposed on the way out and back);
 * - `A/<module>.weight.momentum`, ...: SGD momentum buffers, same layout;
 * - `A/<bn>.running_mean`, `A/<bn>.running_var`: BatchNorm running statistics, in the units
 *   of the metadata's `running_stats` (`weightnorm`: mean divided by ||W||, var by ||W||², W
 *   the S tensor the metadata's `bn_units` names for that BatchNorm; `plain`: PyTorch's).
 * `__metadata__` (strings, as the format requires) holds the step, data position, PRNG seeds,
 * each run's schedule state, the plan and stepper state for an exact resume, the summary so
 * far, the tool's version and the full validated config (JSON strings; non-finite numbers
 * spelt as the strings "NaN", "Infinity", "-Infinity").
 *
 * @module
 */

import type { TilingOverride } from "../shaders/tilings.ts";
import { z } from "zod";
import type { ModelLayout, ParamTensor } from "../core/graph.ts";
import { type PlanState, RUN_NAMES, type RunName, type RunStep } from "../core/runs.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  type SafeTensor,
  SafetensorsError,
} from "../core/safetensors.ts";
import type { TrainingSnapshot } from "./step.ts";
import type { StepperState } from "../core/step_policy.ts";
import type { OutputRow, TrackerState } from "./monitor.ts";
import { STATE_ARRAYS, type StateArray, type TrainerState } from "./state.ts";
import { newReals, type Precision, type Reals } from "../shaders/precision.ts";
import { writeFileAtomic } from "./files.ts";
import {
  checkpointPath,
  claimCheckpointDir,
  type DirOwner,
  divergedPath,
  rotateCheckpoints,
} from "./checkpoint_dir.ts";

/** The `format` metadata value of the files this version writes and reads. */
export const CHECKPOINT_FORMAT = "wd-explr-checkpoint/1";

/** A checkpoint that cannot be used: one line naming the file and the problem. */
export class CheckpointError extends Error {}

/** JSON with NaN and ±Infinity kept (as strings): metadata values. */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v),
  );
}

/** Parses {@link toJson}'s output. */
export function fromJson(text: string): unknown {
  const special: Record<string, number> = { NaN, Infinity, "-Infinity": -Infinity };
  return JSON.parse(text, (_, v) => (typeof v === "string" && v in special ? special[v] : v));
}

/** A parameter tensor's shape in PyTorch: Linear `[out, in]`, Conv2d `[out, in, k, k]`. */
export function torchShape(layout: ModelLayout, t: ParamTensor): number[] {
  if (t.shape.length === 1) return [...t.shape];
  const op = layout.graph.nodes[t.node].op;
  const [rows, out] = t.shape;
  if (op.kind !== "conv") return [out, rows];
  const k = op.kernel;
  return [out, rows / (k * k), k, k];
}

/**
 * The index in the trainer's layout of each element of a tensor in PyTorch's order: element
 * i of the PyTorch tensor is element `index[i]` of the trainer's.
 */
function torchOrder(layout: ModelLayout, t: ParamTensor): Int32Array {
  const shape = torchShape(layout, t), index = new Int32Array(t.size);
  if (shape.length === 1) return index.map((_, i) => i);
  const out = shape[0], cin = shape[1], kk = shape.length === 4 ? shape[2] * shape[3] : 1;
  // PyTorch (co, ci, tap) with tap = kh*K + kw; the trainer's row (tap*Cin + ci), column co.
  for (let co = 0, i = 0; co < out; co++) {
    for (let ci = 0; ci < cin; ci++) {
      for (let tap = 0; tap < kk; tap++, i++) index[i] = (tap * cin + ci) * out + co;
    }
  }
  return index;
}

/** Reals as a safetensors tensor: F32 from a float32 trainer, F64 from df64 and f64 ones. */
function realTensor(shape: number[], data: Reals): SafeTensor {
  return data instanceof Float32Array
    ? { dtype: "F32", shape, data }
    : { dtype: "F64", shape, data };
}

/** One run's tensor `t` (from its flat vector `flat`) in PyTorch's layout, in flat's dtype. */
export function exportTensor(layout: ModelLayout, t: ParamTensor, flat: Reals): SafeTensor {
  const order = torchOrder(layout, t), data = flat.slice(0, t.size);
  for (let i = 0; i < t.size; i++) data[i] = flat[t.offset + order[i]];
  return realTensor(torchShape(layout, t), data);
}

/** Writes a tensor in PyTorch's layout into one run's flat vector `flat`. */
export function importTensor(
  layout: ModelLayout,
  t: ParamTensor,
  data: ArrayLike<number>,
  flat: Reals,
): void {
  const order = torchOrder(layout, t);
  for (let i = 0; i < t.size; i++) flat[t.offset + order[i]] = data[i];
}

/** The schedule state of a run after a step, for people reading the metadata. */
function scheduleState(step: RunStep, log2Scale: number) {
  return {
    c_t: step.cPred,
    k_t: step.cPred / step.cPredBefore,
    lemma2_scale: 2 ** log2Scale,
    lr_s: step.lrS,
    wd_s: step.wdS,
  };
}

/** The suffix of the tensor holding each df64 pair's lo beside its F64 value (exact resume). */
export const DF64_LO = ".df64_lo";

/** One tensor of a run in a checkpoint: its name, the state array it lives in, and its layout. */
interface StateTensor {
  /** The name after the run prefix, e.g. `fc0.weight.momentum`, `bn0.running_var`. */
  name: string;
  array: StateArray;
  /** Elements per run of `array`. */
  perRun: number;
  /** PyTorch's shape. */
  shape: number[];
  /** The tensor from one run's slice of the array, in PyTorch's layout and the slice's dtype. */
  export(run: Reals): SafeTensor;
  /** Writes the tensor's PyTorch-layout `data` into one run's slice. */
  import(data: ArrayLike<number>, run: Reals): void;
}

/** Every tensor of one run, in file order: weights, momentum buffers, running statistics. */
function stateTensors(layout: ModelLayout): StateTensor[] {
  const P = layout.size, N = layout.statsSize;
  const param = (t: ParamTensor, array: StateArray, suffix: string): StateTensor => ({
    name: t.name + suffix,
    array,
    perRun: P,
    shape: torchShape(layout, t),
    export: (run) => exportTensor(layout, t, run),
    import: (data, run) => importTensor(layout, t, data, run),
  });
  const stats = layout.batchNorms.flatMap((bn) =>
    (["runningMean", "runningVar"] as const).map((array): StateTensor => ({
      name: `${layout.graph.nodes[bn.node].name}.${
        array === "runningMean" ? "running_mean" : "running_var"
      }`,
      array,
      perRun: N,
      shape: [bn.features],
      export: (run) => realTensor([bn.features], run.slice(bn.offset, bn.offset + bn.features)),
      import: (data, run) => run.set(data, bn.offset),
    }))
  );
  return [
    ...layout.tensors.map((t) => param(t, "params", "")),
    ...layout.tensors.map((t) => param(t, "bufs", ".momentum")),
    ...stats,
  ];
}

/** What the pipeline adds to every checkpoint's metadata. */
export interface CheckpointContext {
  layout: ModelLayout;
  runs: RunName[];
  runningStats: "weightnorm" | "plain";
  version: string;
  /** SHA-256 of the model file the run trains, when `--model` names one. */
  modelSha256?: string;
  /** The full validated configuration. */
  config: Record<string, unknown>;
  /** The data position after step `s` (epoch, batch in epoch, seeds). */
  dataPosition(step: number): Record<string, number>;
  /** The PRNG seeds of the run (shuffle, augment, perturbation). */
  seeds: Record<string, number>;
  /** The tuned tilings the step runs (kernel key to tiling), so a resumed run computes alike. */
  tilings: Record<string, TilingOverride>;
}

/** A checkpoint as bytes: the snapshot, the summary so far and the context. */
export function encodeCheckpoint(
  ctx: CheckpointContext,
  snap: TrainingSnapshot,
  tracker: TrackerState,
): Uint8Array {
  const { layout } = ctx, tensors = new Map<string, SafeTensor>();
  ctx.runs.forEach((run, r) => {
    for (const st of stateTensors(layout)) {
      const put = (name: string, all: Reals) =>
        tensors.set(name, st.export(all.subarray(r * st.perRun, (r + 1) * st.perRun)));
      put(`${run}/${st.name}`, snap.gpu[st.array]);
      if (snap.gpu.lo) put(`${run}/${st.name}${DF64_LO}`, snap.gpu.lo[st.array]);
    }
  });
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    version: ctx.version,
    step: String(snap.step),
    next_step: String(snap.step + 1),
    epoch: String(snap.epoch),
    data_position: toJson(ctx.dataPosition(snap.step)),
    prng: toJson(ctx.seeds),
    runs: ctx.runs.join(","),
    running_stats: ctx.runningStats,
    ...(ctx.modelSha256 ? { model_sha256: ctx.modelSha256 } : {}),
    bn_units: toJson(
      Object.fromEntries(
        layout.batchNorms.map((bn) => [
          layout.graph.nodes[bn.node].name,
          bn.unit === undefined ? null : layout.sTensors[bn.unit].name,
        ]),
      ),
    ),
    schedule: toJson(
      Object.fromEntries(
        ctx.runs.map((run, r) => [run, scheduleState(snap.lastPlan[r], snap.plan.log2Scale[r])]),
      ),
    ),
    plan: toJson(snap.plan),
    stepper: toJson(snap.stepper),
    summary: toJson(tracker),
    config: toJson(ctx.config),
    tilings: toJson(ctx.tilings),
  };
  return encodeSafetensors(tensors, metadata);
}

/** Any number, NaN and ±Infinity included (z.number() refuses them). */
const anyNumber = z.custom<number>((v) => typeof v === "number", "expected a number");
const planSchema = z.object({
  step: z.number().int().min(0),
  recursion: z.object({ u: z.number(), q: z.number() }).optional(),
  log2Scale: z.array(z.number().int()),
  pending: z.array(z.number().positive()),
});
const stepperSchema = z.object({
  scheduled: z.array(
    z.object({ run: z.number().int().min(0), at: z.number().int(), factor: z.number() }),
  ),
  rescaleAt: z.array(z.number().int()),
  nextProbe: z.number(),
  nextEval: z.number(),
});
const pairSchema = z.object({
  max_dist_maxprob: anyNumber,
  final_dist_maxprob: anyNumber,
  first_step_above: z.record(z.string(), z.number().nullable()),
  max_batch_maxprob: anyNumber,
  final_batch_maxprob: anyNumber,
  batch_first_step_above: z.record(z.string(), z.number().nullable()),
});
const trackerSchema = z.object({
  pairs: z.record(z.string(), pairSchema),
  last: z.record(z.string(), anyNumber),
  at: z.record(z.string(), z.number().int()).optional(),
  steps: z.number().int().min(0),
  rescales: z.number().int().min(0),
});

/** Tuned tilings: kernel key to the tiling's fields (positive integers or flags). */
const tilingsSchema = z.record(
  z.string(),
  z.record(z.string(), z.union([z.number().int().positive(), z.boolean()])),
);

/** A checkpoint's metadata, checked. */
export interface CheckpointMeta {
  version: string;
  step: number;
  epoch: number;
  runs: RunName[];
  runningStats: "weightnorm" | "plain";
  plan: PlanState;
  stepper: StepperState;
  tracker: TrackerState;
  config: Record<string, unknown>;
  /** SHA-256 of the model file, when the run trains one. */
  modelSha256?: string;
  /** The tuned tilings the step ran (absent in checkpoints of versions before 0.6.0). */
  tilings?: Record<string, TilingOverride>;
}

/** A decoded checkpoint file: its metadata and tensors, not yet matched to a model. */
export interface CheckpointFile {
  source: string;
  meta: CheckpointMeta;
  tensors: Map<string, SafeTensor>;
}

/** Decodes and checks a checkpoint's bytes (format and metadata; tensors come later). */
export function decodeCheckpoint(bytes: Uint8Array, source: string): CheckpointFile {
  let decoded;
  try {
    decoded = decodeSafetensors(bytes, source);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError(e.message);
    throw e;
  }
  const m = decoded.metadata;
  const fail = (what: string): never => {
    throw new CheckpointError(`${source}: ${what}`.replace(/\s*\n\s*/g, " "));
  };
  if (m.format !== CHECKPOINT_FORMAT) {
    fail(
      `not a checkpoint of this tool (metadata format ${
        JSON.stringify(m.format ?? null)
      }, expected ${CHECKPOINT_FORMAT})`,
    );
  }
  const field = <T>(key: string, schema: z.ZodType<T>, parse = true): T => {
    if (m[key] === undefined) return fail(`metadata lacks "${key}"`);
    let value: unknown = m[key];
    if (parse) {
      try {
        value = fromJson(m[key]);
      } catch {
        return fail(`metadata "${key}" is not valid JSON`);
      }
    }
    const r = schema.safeParse(value);
    if (!r.success) {
      const issue = r.error.issues[0];
      return fail(`metadata "${key}": ${issue.path.join(".") || "value"}: ${issue.message}`);
    }
    return r.data;
  };
  const runName = z.enum(RUN_NAMES);
  return {
    source,
    tensors: decoded.tensors,
    meta: {
      version: field("version", z.string(), false),
      step: field("step", z.coerce.number().int().min(0), false),
      epoch: field("epoch", z.coerce.number().int().min(0), false),
      runs: field("runs", z.string().transform((s) => s.split(",")).pipe(z.array(runName)), false),
      runningStats: field("running_stats", z.enum(["weightnorm", "plain"]), false),
      plan: field("plan", planSchema),
      stepper: field("stepper", stepperSchema),
      tracker: field("summary", trackerSchema) as TrackerState,
      config: field("config", z.record(z.string(), z.unknown())),
      modelSha256: m.model_sha256 === undefined
        ? undefined
        : field("model_sha256", z.string().regex(/^[0-9a-f]{64}$/), false),
      tilings: m.tilings === undefined ? undefined : field("tilings", tilingsSchema),
    },
  };
}

/**
 * The trainer state a checkpoint holds for `layout` and a trainer of `precision`: every tensor
 * present, in the precision's dtype (F32 for f32, F64 for df64 and f64; df64 also each pair's
 * lo, F32), with the model's shapes; one line naming the file and the first problem otherwise.
 * Extra tensors are refused too (a checkpoint of another model).
 */
export function checkpointState(
  file: CheckpointFile,
  layout: ModelLayout,
  precision: Precision = "f32",
): TrainerState {
  const { source, meta, tensors } = file;
  const R = meta.runs.length, P = layout.size, N = layout.statsSize;
  const sizes: Record<StateArray, number> = { params: P, bufs: P, runningMean: N, runningVar: N };
  const arrays = (make: (n: number) => Reals) =>
    Object.fromEntries(STATE_ARRAYS.map((k) => [k, make(R * sizes[k])])) as Record<
      StateArray,
      Reals
    >;
  const state: TrainerState = arrays((n) => newReals(precision, n));
  if (precision === "df64") state.lo = arrays((n) => new Float32Array(n)) as TrainerState["lo"];
  const dtype = precision === "f32" ? "F32" : "F64";
  const used = new Set<string>();
  const take = (name: string, shape: number[], expected: "F32" | "F64"): Reals => {
    const t = tensors.get(name);
    if (!t) throw new CheckpointError(`${source}: tensor ${name} is missing`);
    if (t.dtype !== expected) {
      throw new CheckpointError(
        `${source}: tensor ${name} is ${t.dtype}, expected ${expected} (--precision ${precision})`,
      );
    }
    if (t.shape.join(",") !== shape.join(",")) {
      throw new CheckpointError(
        `${source}: tensor ${name} has shape [${t.shape}], the model's is [${shape}]`,
      );
    }
    used.add(name);
    return t.data as Reals;
  };
  meta.runs.forEach((run, r) => {
    for (const st of stateTensors(layout)) {
      const get = (name: string, all: Reals, expected: "F32" | "F64") =>
        st.import(take(name, st.shape, expected), all.subarray(r * st.perRun, (r + 1) * st.perRun));
      get(`${run}/${st.name}`, state[st.array], dtype);
      if (state.lo) get(`${run}/${st.name}${DF64_LO}`, state.lo[st.array], "F32");
    }
  });
  const extra = [...tensors.keys()].find((k) => !used.has(k));
  if (extra !== undefined) {
    throw new CheckpointError(`${source}: tensor ${extra} is not part of the model`);
  }
  return state;
}

/** Where and how many checkpoints the stage writes. */
export interface CheckpointStageOptions {
  dir: string;
  /** This run's checkpoints kept at or below the step just written; older ones are deleted. */
  keep: number;
  context: CheckpointContext;
  /** The run the folder belongs to (written into it before the first checkpoint). */
  owner: DirOwner;
  /** Called with the path of each checkpoint written, and whether it is a divergence's. */
  onWritten?: (path: string, step: number, diverged: boolean) => void;
}

/**
 * The checkpoint stage: writes each snapshot row to `DIR/step-N.safetensors` atomically
 * (temporary file, flush, rename) and rotates (`keep`); the state at a divergence goes to
 * `DIR/diverged-step-N.safetensors`, outside the rotation. Passes every other row on.
 */
export function checkpointStage(
  opts: CheckpointStageOptions,
): TransformStream<OutputRow, OutputRow> {
  let claimed = false;
  return new TransformStream<OutputRow, OutputRow>({
    async transform(row, controller) {
      if (row.kind !== "snapshot") return controller.enqueue(row);
      const { step, diverged } = row.snapshot;
      if (!claimed) await claimCheckpointDir(opts.dir, opts.owner);
      claimed = true;
      const path = diverged ? divergedPath(opts.dir, step) : checkpointPath(opts.dir, step);
      await writeFileAtomic(path, encodeCheckpoint(opts.context, row.snapshot, row.tracker));
      opts.onWritten?.(path, step, diverged);
      if (!diverged) await rotateCheckpoints(opts.dir, step, opts.keep);
    },
  });
}
