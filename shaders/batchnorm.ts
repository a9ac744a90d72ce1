/**
 * BatchNorm over a run-stacked [rows, features] activation (features contiguous: BatchNorm1d's
 * batch, BatchNorm2d's N·H·W rows in NHWC): training-mode forward (batch statistics, optionally
 * saving xhat and 1/std for the backward and updating the running statistics), eval-mode forward
 * (running statistics, optionally stored in units of the layer's weight norm, THEORY §5) and the
 * training-mode backward, each optionally fused with a following ReLU (`relu`: the forward writes
 * relu(y); the backward masks dy where that output is not positive, = ReLU's backward).
 *
 * Two designs, chosen by the rows ({@link batchNormSplit}):
 * - whole (rows <= SPLIT_ROWS, an MLP's batch): one dispatch; one thread per (feature, run) sums
 *   its feature over every row in blocks of SUM_BLOCK, then normalises it. Reason: with few rows
 *   one pass is cheapest, and the MLP's summation order (hence its results) stays as it was.
 * - split (more rows): three dispatches. `partials`: one thread per (chunk of `chunkRows` rows,
 *   feature) computes the chunk's mean and sum of squared deviations (two passes over the
 *   chunk, the second from cache) or, backward, its sums of dy and dy·xhat; `stats`: one thread
 *   per feature folds the chunks in chunk order (Chan et al.'s pairwise update for mean and
 *   M2; plain sums backward: deterministic) into mean and 1/std (and the running statistics,
 *   dgamma, dbeta); `apply`: again one thread per (chunk, feature), which loads its feature's
 *   statistics once and normalises (forward) or forms dx (backward) for the chunk's rows.
 *   Reason: the former kernel (one workgroup of lane trees per feature tile: 8 workgroups for
 *   100k × 32) took 79-90 ms forward there, the split ~20 ms; chunked threads keep loops short
 *   (lavapipe stopped writing from invocations that ran ~65k iterations) and an apply with one
 *   thread per element was ~2x slower (per-element gathers). Measured variants:
 *   docs/results/kernel-variants.md.
 *
 * Tiling ({@link BatchNormTiling}): a parameter of the kernel builders that a tuner may change
 * per shape: `workgroup` threads per workgroup in every dispatch of both designs, `chunkRows`
 * rows per chunk of the split design (the whole design has no chunks). Default
 * ({@link DEFAULT_BATCHNORM_TILING}) 128 rows and 64 threads. Reason: chunks of 64 to 512 rows
 * were within lavapipe's noise, 1024 slower (too few threads at 6272 rows); very long chunks
 * bring back the long loops above.
 *
 * The training forward saves xhat for the backward rather than the backward recomputing it from
 * the saved input and statistics: with the buffer planner (stages/step_program.ts) the input
 * of every BatchNorm in the shipped models is dead once the forward has read it, so keeping it
 * instead would cost the same bytes (one tensor of the same shape per node), and the backward
 * reads one tensor either way; recomputing would only add arithmetic.
 *
 * Every variant comes from the one template {@link batchNormWgsl}, in every precision
 * (`precision.ts`): statistics, 1/sqrt(var + eps), every sum and the running-statistics update
 * compute in R, so df64 kernels keep ~1e-14 relative accuracy. Each tensor is a whole-buffer
 * `read_write` binding addressed through `offset + run * runStride + i` from the uniform, so any
 * two views may share a buffer (WebGPU forbids one buffer bound read-only and writable in one
 * dispatch). Only the RunScalars buffer, never written by a kernel, is bound read-only. The split
 * design's scratch (chunk partials, per-feature statistics) is allocated by the kernel builder.
 *
 * @module
 */

import { assertCounts, ceilDiv, KernelInterface } from "./binding.ts";
import { type Dispatch, type Gpu, realBuffer, type TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";
import {
  backwardSlots,
  forwardSlots,
  type NormalizationBackwardViews,
  type NormalizationForwardViews,
  normalizationTiling,
} from "./normalization.ts";

/** Rows above which BatchNorm runs split (partials, stats, apply); at or below, whole. */
export const SPLIT_ROWS = 2048;

/**
 * How BatchNorm blocks its work: the split design (rows > SPLIT_ROWS) takes both fields, the
 * whole design only `workgroup` (it has no chunks).
 */
export interface BatchNormTiling {
  /** Rows per chunk of the partials and apply dispatches. */
  chunkRows: number;
  /**
   * Threads per workgroup of every dispatch (of the whole design too: one thread per feature
   * there and in `stats`, per chunk and feature in `partials` and `apply`); a power of two, at
   * most 256.
   */
  workgroup: number;
}
/** The hand-picked tiling (the fastest measured on lavapipe). */
export const DEFAULT_BATCHNORM_TILING: BatchNormTiling = { chunkRows: 128, workgroup: 64 };
/** Rows summed into a partial before it joins the total (whole design): bounds the error growth. */
const SUM_BLOCK = 32;

/** Whether `rows` rows run the split design (else whole). */
export function batchNormSplit(rows: number): boolean {
  return rows > SPLIT_ROWS;
}

/** A BatchNorm dispatch: the whole kernel, or one of the split design's three passes. */
export type BatchNormStage = "whole" | "partials" | "stats" | "apply";

/** The compile-time choices of one BatchNorm kernel; every flag is a branch of one template. */
export type BatchNormVariant =
  | {
    pass: "forward";
    stage: BatchNormStage;
    /** train: batch statistics; eval: running statistics (no partials stage). */
    mode: "train" | "eval";
    /** gamma/beta present. */
    affine: boolean;
    /** Train mode: write xhat and invStd for the backward. */
    save: boolean;
    /** Train mode: update the running statistics. */
    update: boolean;
    /** Running statistics are stored in units of sqrt(a per-run scalar ||W||²). */
    unit: boolean;
    /** The RunScalars field holding this forward's eps. */
    epsField: "eps" | "eps_next";
    /** Write relu(y) (BatchNorm fused with the ReLU that follows it). */
    relu: boolean;
  }
  | {
    pass: "backward";
    stage: BatchNormStage;
    gamma: boolean;
    dgamma: boolean;
    dbeta: boolean;
    /** dy is the gradient of relu(y): masked where the forward's fused output `y` is not > 0. */
    relu: boolean;
  };

/** Inputs and outputs of a BatchNorm forward; see the module doc and reference/ops.ts. */
export interface BatchNormForwardSpec extends NormalizationForwardViews {
  /** x, y and xhat are [rows, features]; invStd, gamma and beta [features]. */
  rows: number;
  features: number;
  /** train: batch statistics; eval: running statistics (saves no xhat, invStd). */
  mode: "train" | "eval";
  /** Running statistics [features] per run, stored in units of `unit` (THEORY §5). */
  running?: {
    mean: TensorView;
    var: TensorView;
    /** PyTorch's 0.1; a uniform real of the kernel. */
    momentum: number;
    /** Per-run scalar holding ||W||² (unit = its square root); absent = unit 1. */
    unit?: TensorView;
    /** Train mode: update the running statistics (false for a probe forward); must be false in eval. */
    update: boolean;
  };
}

/** Inputs and outputs of the BatchNorm backward (shapes as the forward's). */
export interface BatchNormBackwardSpec extends NormalizationBackwardViews {
  rows: number;
  features: number;
}

/** Tensor bindings of a variant, in binding order (after the uniform and the scalars). */
function tensorSlots(v: BatchNormVariant): string[] {
  const opt = (on: boolean, ...names: string[]) => (on ? names : []);
  if (v.pass === "backward") {
    switch (v.stage) {
      case "whole":
        return [
          "dy",
          "xhat",
          "inv_std",
          "dx",
          ...opt(v.gamma, "gamma"),
          ...opt(v.dgamma, "dgamma"),
          ...opt(v.dbeta, "dbeta"),
          ...opt(v.relu, "y"),
        ];
      case "partials":
        return ["dy", "xhat", ...opt(v.relu, "y"), "part"];
      case "stats":
        return [
          "part",
          "stat",
          "inv_std",
          ...opt(v.gamma, "gamma"),
          ...opt(v.dgamma, "dgamma"),
          ...opt(v.dbeta, "dbeta"),
        ];
      case "apply":
        return ["dy", "xhat", "dx", ...opt(v.relu, "y"), "stat"];
    }
  }
  const train = v.mode === "train", save = train && v.save;
  const running = !train || v.update;
  const runningSlots = [
    ...opt(running, "run_mean", "run_var"),
    ...opt(running && v.unit, "unit_sq"),
  ];
  switch (v.stage) {
    case "whole":
      return [
        "x",
        "y",
        ...opt(save, "xhat", "inv_std"),
        ...opt(v.affine, "gamma", "beta"),
        ...runningSlots,
      ];
    case "partials":
      return ["x", "part"];
    case "stats":
      return [...opt(train, "part"), "stat", ...opt(save, "inv_std"), ...runningSlots];
    case "apply":
      return ["x", "y", ...opt(save, "xhat"), "stat", ...opt(v.affine, "gamma", "beta")];
  }
}

/** Per-feature slots hold [features] per run; unit_sq one scalar; part, stat the split's scratch. */
const PER_FEATURE = ["inv_std", "gamma", "beta", "run_mean", "run_var", "dgamma", "dbeta"];

/** Whether a variant's dispatch updates the running statistics (the only reader of the momentum). */
function updates(v: BatchNormVariant): boolean {
  return v.pass === "forward" && v.mode === "train" && v.update &&
    (v.stage === "whole" || v.stage === "stats");
}

/** Whether a variant's dispatch reads eps from RunScalars. */
function readsEps(v: BatchNormVariant): boolean {
  return v.pass === "forward" && (v.stage === "whole" || v.stage === "stats");
}

const interfaces = new Map<string, KernelInterface>();

/**
 * The (cached) interface of a variant in `precision`: every slot `read_write` (of R), RunScalars
 * where eps is read, the momentum a uniform real where the running statistics are updated; the
 * split stages add the chunk geometry to the dims.
 */
function batchNormInterface(v: BatchNormVariant, precision: Precision): KernelInterface {
  const slots = tensorSlots(v);
  const key = `${precision} ${v.pass} ${v.stage} ${updates(v)} ${slots.join(" ")}`;
  let i = interfaces.get(key);
  if (!i) {
    i = new KernelInterface(`batchnorm ${v.pass} ${v.stage}`, {
      precision,
      dims: v.stage === "whole" ? ["rows", "features"] : ["rows", "features", "chunk", "chunks"],
      reals: updates(v) ? ["momentum"] : [],
      slots: slots.map((name) => ({ name, access: "read_write" })),
      runScalars: readsEps(v),
    });
    interfaces.set(key, i);
  }
  return i;
}

type Forward = Extract<BatchNormVariant, { pass: "forward" }>;
type Backward = Extract<BatchNormVariant, { pass: "backward" }>;

/**
 * WGSL of one BatchNorm variant (any pass and stage) in `precision` with `workgroup` threads per
 * workgroup (unchecked here: the kernel builders check a tiling): one template.
 */
export function batchNormWgsl(
  v: BatchNormVariant,
  precision: Precision = "f32",
  workgroup: number = DEFAULT_BATCHNORM_TILING.workgroup,
): string {
  const decl = batchNormInterface(v, precision).wgsl;
  // One thread per feature (whole, stats) or per chunk of rows and feature (partials, apply).
  const body = v.pass === "forward"
    ? { whole: wholeForward, partials: partialsForward, stats: statsForward, apply: applyForward }[
      v.stage
    ](v)
    : {
      whole: wholeBackward,
      partials: partialsBackward,
      stats: statsBackward,
      apply: applyBackward,
    }[v.stage](v);
  const threads = v.stage === "partials" || v.stage === "apply" ? "u.chunks * f" : "f";
  return /* wgsl */ `${decl}

const SUM_BLOCK: u32 = ${SUM_BLOCK}u;

@compute @workgroup_size(${workgroup})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let f = u.features;
  let t = wid.x * ${workgroup}u + lid.x;
  if (t >= ${threads}) { return; }
  let r = wid.z;
  let n = u.rows;
${body}
}
`;
}

/** The output of the forward from h (xhat) at feature j: affine, then the fused ReLU. */
function forwardOut(v: Forward, g: string, b: string): string {
  const o = v.affine ? `r_fma(${g}, h, ${b})` : "h";
  return v.relu ? `select(R(), ${o}, r_hi(${o}) > 0.0)` : o;
}

/** dy at element k, masked by the fused ReLU's output. */
function dyAt(v: Backward, k: string): string {
  return v.relu
    ? `select(R(), dy[at_dy(r, ${k})], r_hi(y[at_y(r, ${k})]) > 0.0)`
    : `dy[at_dy(r, ${k})]`;
}

/**
 * WGSL summing feature j over all rows in blocks of SUM_BLOCK (partial sums, then their total),
 * so the rounding error grows with rows/SUM_BLOCK + SUM_BLOCK rather than with rows. Declares the
 * totals `acc`; `term` (the loop body, row `i`) adds to their partials `<acc>_part`.
 */
function blockedSum(acc: string[], term: string): string {
  const decl = acc.map((a) => `  var ${a} = R();`).join("\n");
  const part = acc.map((a) => `    var ${a}_part = R();`).join("\n");
  const fold = acc.map((a) => `    ${a} = r_add(${a}, ${a}_part);`).join("\n");
  return `${decl}
  for (var i0 = 0u; i0 < n; i0 += SUM_BLOCK) {
${part}
    for (var i = i0; i < min(i0 + SUM_BLOCK, n); i++) {
${term}
    }
${fold}
  }`;
}

/** WGSL of `unit_sq_r` and `unit_len`: the weight norm's square and length, or 1 without a unit. */
function unitWgsl(v: Forward): string {
  return v.unit
    ? `  let unit_sq_r = unit_sq[at_unit_sq(r, 0u)];
  let unit_len = r_sqrt(unit_sq_r);`
    : `  let unit_sq_r = r_f(1.0);
  let unit_len = r_f(1.0);`;
}

/** From `mean`, `variance`, `nr` (train): inv, saved invStd, the running-statistics update. */
function trainFinish(v: Forward): string {
  const unit = unitWgsl(v);
  return `  let inv = r_div(r_f(1.0), r_sqrt(r_add(variance, scalars[r].${v.epsField})));
${v.save ? "  inv_std[at_inv_std(r, j)] = inv;" : ""}
${
    v.update
      ? `${unit}
  // PyTorch's running update: unbiased variance; stored in units of the weight norm.
  let m = u.momentum;
  let keep = r_sub(r_f(1.0), m);
  let unbias = r_div(nr, r_f(f32(max(1u, n - 1u))));
  let km = at_run_mean(r, j);
  let kv = at_run_var(r, j);
  run_mean[km] = r_fma(keep, run_mean[km], r_div(r_mul(m, mean), unit_len));
  run_var[kv] = r_fma(keep, run_var[kv], r_div(r_mul(r_mul(m, variance), unbias), unit_sq_r));`
      : ""
  }`;
}

/** Eval mode: mean and inv from the running statistics (stored in units of the weight norm). */
function evalStats(v: Forward): string {
  const unit = unitWgsl(v);
  return `${unit}
  let mean = r_mul(unit_len, run_mean[at_run_mean(r, j)]);
  let inv = r_div(r_f(1.0), r_sqrt(r_fma(unit_sq_r, run_var[at_run_var(r, j)], scalars[r].${v.epsField})));`;
}

function wholeForward(v: Forward): string {
  const stats = v.mode === "train"
    ? `${blockedSum(["total"], `      total_part = r_add(total_part, x[at_x(r, i * f + j)]);`)}
  let nr = r_f(f32(n));
  let mean = r_div(total, nr);
  // Two-pass variance: sum of squared deviations from the mean, no cancellation.
${
      blockedSum(
        ["sq"],
        `      let d = r_sub(x[at_x(r, i * f + j)], mean);\n      sq_part = r_fma(d, d, sq_part);`,
      )
    }
  let variance = r_div(sq, nr);
${trainFinish(v)}`
    : evalStats(v);
  const affine = v.affine
    ? `  let g = gamma[at_gamma(r, j)];
  let b = beta[at_beta(r, j)];`
    : "";
  return `  let j = t;
${stats}
${affine}
  for (var i = 0u; i < n; i++) {
    let h = r_mul(r_sub(x[at_x(r, i * f + j)], mean), inv);
${v.mode === "train" && v.save ? "    xhat[at_xhat(r, i * f + j)] = h;" : ""}
    y[at_y(r, i * f + j)] = ${forwardOut(v, "g", "b")};
  }`;
}

/** Rows [i0, i1) of chunk c = t / f, feature j; the chunk's partials sit at t and chunks·f + t. */
const CHUNK = `  let c = t / f;
  let j = t - c * f;
  let i0 = c * u.chunk;
  let i1 = min(i0 + u.chunk, n);`;

function partialsForward(): string {
  return `${CHUNK}
  var s = R();
  for (var i = i0; i < i1; i++) { s = r_add(s, x[at_x(r, i * f + j)]); }
  let m = r_div(s, r_f(f32(i1 - i0)));
  var q = R();
  for (var i = i0; i < i1; i++) {
    let d = r_sub(x[at_x(r, i * f + j)], m);
    q = r_fma(d, d, q);
  }
  part[at_part(r, t)] = m;
  part[at_part(r, u.chunks * f + t)] = q;`;
}

function statsForward(v: Forward): string {
  const stats = v.mode === "train"
    ? `  // Chan et al.'s pairwise update, chunk by chunk in order: mean and M2 of the rows so far.
  var cnt = R();
  var mean = R();
  var m2 = R();
  for (var c = 0u; c < u.chunks; c++) {
    let nb = r_f(f32(min(u.chunk, n - c * u.chunk)));
    let tot = r_add(cnt, nb);
    let d = r_sub(part[at_part(r, c * f + j)], mean);
    let w = r_div(nb, tot);
    mean = r_fma(d, w, mean);
    m2 = r_add(r_add(m2, part[at_part(r, (u.chunks + c) * f + j)]), r_mul(r_mul(d, d), r_mul(cnt, w)));
    cnt = tot;
  }
  let nr = r_f(f32(n));
  let variance = r_div(m2, nr);
${trainFinish(v)}`
    : evalStats(v);
  return `  let j = t;
${stats}
  stat[at_stat(r, j)] = mean;
  stat[at_stat(r, f + j)] = inv;`;
}

function applyForward(v: Forward): string {
  const affine = v.affine
    ? `  let g = gamma[at_gamma(r, j)];
  let b = beta[at_beta(r, j)];`
    : "";
  return `${CHUNK}
  let mean = stat[at_stat(r, j)];
  let inv = stat[at_stat(r, f + j)];
${affine}
  for (var i = i0; i < i1; i++) {
    let k = i * f + j;
    let h = r_mul(r_sub(x[at_x(r, k)], mean), inv);
${v.mode === "train" && v.save ? "    xhat[at_xhat(r, k)] = h;" : ""}
    y[at_y(r, k)] = ${forwardOut(v, "g", "b")};
  }`;
}

function wholeBackward(v: Backward): string {
  return `  let j = t;
${
    blockedSum(
      ["sdy", "sdyx"],
      `      let d = ${dyAt(v, "i * f + j")};
      sdy_part = r_add(sdy_part, d);
      sdyx_part = r_fma(d, xhat[at_xhat(r, i * f + j)], sdyx_part);`,
    )
  }
${v.dgamma ? "  dgamma[at_dgamma(r, j)] = sdyx;" : ""}
${v.dbeta ? "  dbeta[at_dbeta(r, j)] = sdy;" : ""}
  let nf = r_f(f32(n));
  let inv = inv_std[at_inv_std(r, j)];
  let scale = r_div(${v.gamma ? "r_mul(gamma[at_gamma(r, j)], inv)" : "inv"}, nf);
  for (var i = 0u; i < n; i++) {
    let k = i * f + j;
    let bracket = r_sub(r_sub(r_mul(nf, ${dyAt(v, "k")}), sdy), r_mul(xhat[at_xhat(r, k)], sdyx));
    dx[at_dx(r, k)] = r_mul(scale, bracket);
  }`;
}

function partialsBackward(v: Backward): string {
  return `${CHUNK}
  var s = R();
  var sx = R();
  for (var i = i0; i < i1; i++) {
    let k = i * f + j;
    let d = ${dyAt(v, "k")};
    s = r_add(s, d);
    sx = r_fma(d, xhat[at_xhat(r, k)], sx);
  }
  part[at_part(r, t)] = s;
  part[at_part(r, u.chunks * f + t)] = sx;`;
}

/** Backward totals: the chunks' sums in chunk order; stat = (sdy, sdyx, gamma·invStd/rows). */
function statsBackward(v: Backward): string {
  return `  let j = t;
  var sdy = R();
  var sdyx = R();
  for (var c = 0u; c < u.chunks; c++) {
    sdy = r_add(sdy, part[at_part(r, c * f + j)]);
    sdyx = r_add(sdyx, part[at_part(r, (u.chunks + c) * f + j)]);
  }
${v.dgamma ? "  dgamma[at_dgamma(r, j)] = sdyx;" : ""}
${v.dbeta ? "  dbeta[at_dbeta(r, j)] = sdy;" : ""}
  let inv = inv_std[at_inv_std(r, j)];
  stat[at_stat(r, j)] = sdy;
  stat[at_stat(r, f + j)] = sdyx;
  stat[at_stat(r, 2u * f + j)] = r_div(${
    v.gamma ? "r_mul(gamma[at_gamma(r, j)], inv)" : "inv"
  }, r_f(f32(n)));`;
}

function applyBackward(v: Backward): string {
  return `${CHUNK}
  let nf = r_f(f32(n));
  let sdy = stat[at_stat(r, j)];
  let sdyx = stat[at_stat(r, f + j)];
  let scale = stat[at_stat(r, 2u * f + j)];
  for (var i = i0; i < i1; i++) {
    let k = i * f + j;
    let bracket = r_sub(r_sub(r_mul(nf, ${dyAt(v, "k")}), sdy), r_mul(xhat[at_xhat(r, k)], sdyx));
    dx[at_dx(r, k)] = r_mul(scale, bracket);
  }`;
}

/** Elements per run of a slot: [features], one scalar, the split's scratch, or [rows, features]. */
function slotLength(s: string, rows: number, features: number, chunks: number): number {
  if (s === "unit_sq") return 1;
  if (PER_FEATURE.includes(s)) return features;
  if (s === "part") return 2 * chunks * features;
  if (s === "stat") return 3 * features;
  return rows * features;
}

/**
 * The dispatches of `base` (stage "whole" unless the rows split) over the views named by the
 * slots (others are ignored), blocked by `tiling` (checked here); the split design's scratch is
 * allocated here.
 */
function build(
  gpu: Gpu,
  base: BatchNormVariant,
  shape: { precision?: Precision; runs: number; rows: number; features: number; momentum: number },
  views: Record<string, TensorView | undefined>,
  scalars: GPUBuffer | undefined,
  tiling: Partial<BatchNormTiling> | undefined,
): Dispatch[] {
  const { precision = "f32", runs, rows, features } = shape;
  assertCounts("batchnorm", { runs, rows, features });
  const { chunkRows, workgroup } = normalizationTiling(
    "batchnorm",
    DEFAULT_BATCHNORM_TILING,
    tiling,
  );
  const split = batchNormSplit(rows);
  // A chunk longer than the rows is one chunk of them all (and keeps the uniform a u32).
  const chunk = Math.min(chunkRows, rows);
  const chunks = ceilDiv(rows, chunk);
  const all = { ...views };
  if (split) {
    const scratch = (n: number, what: string): TensorView => ({
      buffer: realBuffer(gpu, precision, runs * n, `batchnorm ${base.pass} ${what}`),
      offset: 0,
      runStride: n,
    });
    all.part = scratch(2 * chunks * features, "chunk partials");
    all.stat = scratch(3 * features, "statistics");
  }
  const stages: BatchNormStage[] = !split
    ? ["whole"]
    : base.pass === "forward" && base.mode === "eval"
    ? ["stats", "apply"]
    : ["partials", "stats", "apply"];
  return stages.map((stage) => {
    const v = { ...base, stage } as BatchNormVariant;
    const bound = tensorSlots(v).map((s) => {
      const view = all[s];
      if (!view) throw new Error(`batchnorm ${v.pass} ${stage}: missing ${s}`);
      return [s, { view, length: slotLength(s, rows, features, chunks) }];
    });
    const threads = stage === "partials" || stage === "apply" ? chunks * features : features;
    return batchNormInterface(v, precision).dispatch(gpu, {
      code: batchNormWgsl(v, precision, workgroup),
      dims: { rows, features, chunk, chunks },
      reals: { momentum: shape.momentum },
      views: Object.fromEntries(bound),
      runs,
      workgroups: [ceilDiv(threads, workgroup), 1, runs],
      scalars: readsEps(v) ? scalars : undefined,
    });
  });
}

/** The forward variant (whole stage) `spec` selects: its mode, slot flags and running update. */
export function batchNormForwardVariant(spec: BatchNormForwardSpec): BatchNormVariant {
  const run = spec.running;
  return {
    pass: "forward",
    stage: "whole",
    mode: spec.mode,
    ...forwardSlots("batchnorm", spec).flags,
    update: spec.mode === "train" && !!run?.update,
    unit: !!run?.unit,
  };
}

/**
 * BatchNorm forward = reference `batchNormForward` (+ `updateRunningStats`) in train mode,
 * `batchNormEval` in eval mode, then `reluForward` with `relu`; eps is read per run from
 * `scalars[run][epsField]` every step. One dispatch (whole) or three (split; eval: two), blocked
 * by `tiling` (fields absent: {@link DEFAULT_BATCHNORM_TILING}'s); a bad tiling throws.
 */
export function batchNormForwardKernel(
  gpu: Gpu,
  spec: BatchNormForwardSpec,
  tiling?: Partial<BatchNormTiling>,
): Dispatch[] {
  const train = spec.mode === "train";
  const run = spec.running;
  const { views } = forwardSlots("batchnorm", spec);
  if (!train && spec.xhat) throw new Error("batchnorm: eval mode saves no xhat/invStd");
  if (!train && !run) throw new Error("batchnorm: eval mode needs running statistics");
  if (!train && run?.update) throw new Error("batchnorm: eval mode cannot update running stats");
  const variant = batchNormForwardVariant(spec);
  return build(
    gpu,
    variant,
    { ...spec, momentum: run?.momentum ?? 0 },
    {
      ...views,
      run_mean: run?.mean,
      run_var: run?.var,
      unit_sq: run?.unit,
    },
    spec.scalars,
    tiling,
  );
}

/**
 * BatchNorm backward (training mode) = reference `batchNormBackward` (of `reluBackward`'s dx
 * when `y` is given); outputs are overwritten. One dispatch (whole) or three (split), blocked by
 * `tiling` as the forward's.
 */
export function batchNormBackwardKernel(
  gpu: Gpu,
  spec: BatchNormBackwardSpec,
  tiling?: Partial<BatchNormTiling>,
): Dispatch[] {
  const { flags, views } = backwardSlots(spec);
  const variant: BatchNormVariant = { pass: "backward", stage: "whole", ...flags };
  return build(gpu, variant, { ...spec, momentum: 0 }, views, undefined, tiling);
}
