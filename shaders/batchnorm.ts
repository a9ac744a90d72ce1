/**
 * BatchNorm1d over a run-stacked [rows, features] activation: training-mode forward (batch
 * statistics, optionally saving xhat and 1/std for the backward and updating the running
 * statistics), eval-mode forward (running statistics, optionally stored in units of the layer's
 * weight norm, THEORY §5), and the training-mode backward. A workgroup's threads read
 * consecutive features of a row, so loads coalesce. With few rows (an MLP's batch) one thread
 * per (feature, run) loops over all rows; with many (BatchNorm2d: rows = N·H·W, 100k for a
 * batch of 128 28×28 images) `lanes` threads share a feature, each summing every lanes-th row,
 * and their sums meet in workgroup memory. Besides using more threads, this keeps each
 * invocation's loops short: on lavapipe an invocation that ran more than about 65,000 loop
 * iterations silently stopped writing (measured: rows past ~20,000 came out 0), so
 * {@link batchNormLanes} keeps each thread at most ROWS_PER_LANE rows.
 *
 * Every variant comes from the one template {@link batchNormWgsl}, in every precision
 * (`precision.ts`): the statistics, 1/sqrt(var + eps), every sum (the lanes' workgroup sums too)
 * and the running-statistics update compute in R, so df64 kernels keep ~1e-14 relative accuracy
 * and float32 ones compute exactly what they did before (`precision` on the specs and as
 * {@link batchNormWgsl}'s last parameter, default f32). Measured on lavapipe (2 busy cores, noisy,
 * train forward with update, R = 1): df64 takes 1.5-2.2x the float32 time at 128×1024 (4.5-6.7
 * ms), 2.7-4x at 16384×16 (8 lanes, 42-45 ms). Each tensor is a whole-buffer
 * `read_write` binding addressed through `offset + run * runStride + i` from the uniform, so any
 * two views may share a buffer (wgpu rejects one buffer bound both read-only and read-write in a
 * dispatch, which would forbid e.g. x and y living in one activation buffer). Only the RunScalars
 * buffer, never written by a kernel, is bound read-only.
 *
 * @module
 */

import { assertCounts, ceilDiv, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";

/** Threads per workgroup along the features when one thread takes a whole feature. */
const WORKGROUP = 64;
/** Threads per workgroup when several lanes share a feature (features × lanes). */
const LANE_WORKGROUP = 256;
/** Rows a thread takes at most before the rows are split over lanes. */
const ROWS_PER_LANE = 2048;
/** Lanes per feature at most. */
const MAX_LANES = 64;

/**
 * Lanes (threads) per feature for `rows` rows: 1 up to ROWS_PER_LANE rows (the summation
 * order of one thread per feature), else the power of two that keeps each lane at most
 * ROWS_PER_LANE rows.
 */
export function batchNormLanes(rows: number): number {
  if (rows <= ROWS_PER_LANE) return 1;
  const lanes = 2 ** Math.ceil(Math.log2(rows / ROWS_PER_LANE));
  if (lanes > MAX_LANES) {
    throw new Error(`batchnorm: ${rows} rows exceed ${MAX_LANES * ROWS_PER_LANE}`);
  }
  return lanes;
}

/** Rows summed into a partial before it joins the total: bounds the error growth of long sums. */
const SUM_BLOCK = 32;

/** The compile-time choices of one BatchNorm kernel; every flag is a branch of one template. */
export type BatchNormVariant =
  | {
    pass: "forward";
    /** train: batch statistics; eval: running statistics. */
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
    /** Threads per feature ({@link batchNormLanes}). */
    lanes: number;
  }
  | {
    pass: "backward";
    gamma: boolean;
    dgamma: boolean;
    dbeta: boolean;
    lanes: number;
  };

/** Inputs and outputs of a BatchNorm forward; see the module doc and reference/ops.ts. */
export interface BatchNormForwardSpec {
  /** Arithmetic of the real views, of eps and of the momentum (default f32). */
  precision?: Precision;
  runs: number;
  rows: number;
  features: number;
  /** train: batch statistics; eval: running statistics. */
  mode: "train" | "eval";
  /** Input z [rows, features]. */
  x: TensorView;
  /** Output [rows, features]. */
  y: TensorView;
  /** Train mode: normalised input saved for backward [rows, features] (with invStd or neither). */
  xhat?: TensorView;
  /** Train mode: 1/sqrt(var+eps) saved for backward [features]. */
  invStd?: TensorView;
  /** Affine scale [features] (with beta or neither). */
  gamma?: TensorView;
  /** Affine shift [features]. */
  beta?: TensorView;
  /** array<RunScalars>, one record per run. */
  scalars: GPUBuffer;
  /** Which RunScalars field holds this forward's eps. */
  epsField: "eps" | "eps_next";
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

/** Inputs and outputs of the BatchNorm backward; dx, dgamma, dbeta are written, not accumulated. */
export interface BatchNormBackwardSpec {
  /** Arithmetic of the views (default f32). */
  precision?: Precision;
  runs: number;
  rows: number;
  features: number;
  dy: TensorView;
  xhat: TensorView;
  invStd: TensorView;
  gamma?: TensorView;
  dx: TensorView;
  dgamma?: TensorView;
  dbeta?: TensorView;
}

/** Tensor bindings of a variant, in binding order (after the uniform and, forward, the scalars). */
function tensorSlots(v: BatchNormVariant): string[] {
  if (v.pass === "backward") {
    return [
      "dy",
      "xhat",
      "inv_std",
      "dx",
      ...(v.gamma ? ["gamma"] : []),
      ...(v.dgamma ? ["dgamma"] : []),
      ...(v.dbeta ? ["dbeta"] : []),
    ];
  }
  const running = v.mode === "eval" || v.update;
  return [
    "x",
    "y",
    ...(v.mode === "train" && v.save ? ["xhat", "inv_std"] : []),
    ...(v.affine ? ["gamma", "beta"] : []),
    ...(running ? ["run_mean", "run_var"] : []),
    ...(running && v.unit ? ["unit_sq"] : []),
  ];
}

/** Per-feature slots hold [features] per run; unit_sq one scalar; the rest [rows, features]. */
const PER_FEATURE = ["inv_std", "gamma", "beta", "run_mean", "run_var", "dgamma", "dbeta"];

/** Whether a variant updates the running statistics (the only reader of the momentum). */
function updates(v: BatchNormVariant): boolean {
  return v.pass === "forward" && v.mode === "train" && v.update;
}

const interfaces = new Map<string, KernelInterface>();

/**
 * The (cached) interface of a variant in `precision`: every slot `read_write` (of R), RunScalars
 * for the forward, the momentum a uniform real where the running statistics are updated.
 */
function batchNormInterface(v: BatchNormVariant, precision: Precision): KernelInterface {
  const slots = tensorSlots(v);
  // Lanes do not change the interface.
  const key = `${precision} ${v.pass} ${updates(v)} ${slots.join(" ")}`;
  let i = interfaces.get(key);
  if (!i) {
    i = new KernelInterface(`batchnorm ${v.pass}`, {
      precision,
      dims: ["rows", "features"],
      reals: updates(v) ? ["momentum"] : [],
      slots: slots.map((name) => ({ name, access: "read_write" })),
      runScalars: v.pass === "forward",
    });
    interfaces.set(key, i);
  }
  return i;
}

/** WGSL of one BatchNorm variant (forward train/eval or backward) in `precision`: one template. */
export function batchNormWgsl(v: BatchNormVariant, precision: Precision = "f32"): string {
  const body = v.pass === "forward" ? forwardBody(v) : backwardBody(v);
  const L = v.lanes, FT = featureTile(L);
  // With one lane, lane_sum is the identity and threads past the features return at once;
  // with several, every thread reaches the barriers (uniform control flow) and only the
  // threads of real features write.
  const laneSum = L === 1 ? "fn lane_sum(v: R, lid: vec3<u32>) -> R { return v; }" : `
var<workgroup> lane_part: array<R, ${FT * L}>;
fn lane_sum(v: R, lid: vec3<u32>) -> R {
  lane_part[lid.y * ${FT}u + lid.x] = v;
  workgroupBarrier();
  for (var s = ${L / 2}u; s > 0u; s >>= 1u) {
    if (lid.y < s) {
      let k = lid.y * ${FT}u + lid.x;
      lane_part[k] = r_add(lane_part[k], lane_part[(lid.y + s) * ${FT}u + lid.x]);
    }
    workgroupBarrier();
  }
  let total = lane_part[lid.x];
  workgroupBarrier();
  return total;
}`;
  return /* wgsl */ `${batchNormInterface(v, precision).wgsl}

const SUM_BLOCK: u32 = ${SUM_BLOCK}u;
const LANES: u32 = ${L}u;
${laneSum}

@compute @workgroup_size(${FT}, ${L})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let f = u.features;
  let in_range = wid.x * ${FT}u + lid.x < f;
  ${L === 1 ? "if (!in_range) { return; }" : ""}
  let j = min(wid.x * ${FT}u + lid.x, f - 1u);
  let lane = lid.y;
  let r = wid.z;
  let n = u.rows;
${body}
}
`;
}

/** Features per workgroup for `lanes` lanes per feature. */
function featureTile(lanes: number): number {
  return lanes === 1 ? WORKGROUP : LANE_WORKGROUP / lanes;
}

/**
 * WGSL summing over the rows in blocks of SUM_BLOCK (partial sums, then their total), so the
 * rounding error grows with rows/SUM_BLOCK + SUM_BLOCK rather than with rows; each lane sums its
 * rows (lane, lane + LANES, ...) so, then the lanes' sums are added. Declares the totals `acc`;
 * `term` (the loop body, row `i`) adds to their partials `<acc>_part`.
 */
function blockedSum(acc: string[], term: string): string {
  const decl = acc.map((a) => `  var ${a}_lane = R();`).join("\n");
  const part = acc.map((a) => `    var ${a}_part = R();`).join("\n");
  const fold = acc.map((a) => `    ${a}_lane = r_add(${a}_lane, ${a}_part);`).join("\n");
  const total = acc.map((a) => `  let ${a} = lane_sum(${a}_lane, lid);`).join("\n");
  return `${decl}
  for (var i0 = lane; i0 < n; i0 += SUM_BLOCK * LANES) {
${part}
    for (var i = i0; i < min(i0 + SUM_BLOCK * LANES, n); i += LANES) {
${term}
    }
${fold}
  }
${total}`;
}

function forwardBody(v: Extract<BatchNormVariant, { pass: "forward" }>): string {
  const train = v.mode === "train";
  const save = train && v.save;
  const running = !train || v.update;
  const unit = running && v.unit
    ? `  let unit_sq_r = unit_sq[at_unit_sq(r, 0u)];
  let unit_len = r_sqrt(unit_sq_r);`
    : `  let unit_sq_r = r_f(1.0);
  let unit_len = r_f(1.0);`;
  const eps = `scalars[r].${v.epsField}`;
  const stats = train
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
  let inv = r_div(r_f(1.0), r_sqrt(r_add(variance, ${eps})));
  let writer = in_range && lane == 0u;
${save ? "  if (writer) { inv_std[at_inv_std(r, j)] = inv; }" : ""}
${
      running
        ? `${unit}
  // PyTorch's running update: unbiased variance; stored in units of the weight norm.
  let m = u.momentum;
  let keep = r_sub(r_f(1.0), m);
  let unbias = r_div(nr, r_f(f32(max(1u, n - 1u))));
  let km = at_run_mean(r, j);
  let kv = at_run_var(r, j);
  if (writer) {
    run_mean[km] = r_fma(keep, run_mean[km], r_div(r_mul(m, mean), unit_len));
    run_var[kv] = r_fma(keep, run_var[kv], r_div(r_mul(r_mul(m, variance), unbias), unit_sq_r));
  }`
        : ""
    }`
    : `${unit}
  let mean = r_mul(unit_len, run_mean[at_run_mean(r, j)]);
  let inv = r_div(r_f(1.0), r_sqrt(r_fma(unit_sq_r, run_var[at_run_var(r, j)], ${eps})));`;
  const affine = v.affine
    ? `  let g = gamma[at_gamma(r, j)];
  let b = beta[at_beta(r, j)];`
    : "";
  return `${stats}
${affine}
  if (!in_range) { return; }
  for (var i = lane; i < n; i += LANES) {
    let h = r_mul(r_sub(x[at_x(r, i * f + j)], mean), inv);
${save ? "    xhat[at_xhat(r, i * f + j)] = h;" : ""}
    y[at_y(r, i * f + j)] = ${v.affine ? "r_fma(g, h, b)" : "h"};
  }`;
}

function backwardBody(v: Extract<BatchNormVariant, { pass: "backward" }>): string {
  return `${
    blockedSum(
      ["sdy", "sdyx"],
      `      let d = dy[at_dy(r, i * f + j)];
      sdy_part = r_add(sdy_part, d);
      sdyx_part = r_fma(d, xhat[at_xhat(r, i * f + j)], sdyx_part);`,
    )
  }
  if (!in_range) { return; }
${v.dgamma ? "  if (lane == 0u) { dgamma[at_dgamma(r, j)] = sdyx; }" : ""}
${v.dbeta ? "  if (lane == 0u) { dbeta[at_dbeta(r, j)] = sdy; }" : ""}
  let nf = r_f(f32(n));
  let inv = inv_std[at_inv_std(r, j)];
  let scale = r_div(${v.gamma ? "r_mul(gamma[at_gamma(r, j)], inv)" : "inv"}, nf);
  for (var i = lane; i < n; i += LANES) {
    let k = i * f + j;
    let bracket = r_sub(r_sub(r_mul(nf, dy[at_dy(r, k)]), sdy), r_mul(xhat[at_xhat(r, k)], sdyx));
    dx[at_dx(r, k)] = r_mul(scale, bracket);
  }`;
}

/** Builds the dispatch of `variant` over the views named by its slots (others are ignored). */
function build(
  gpu: Gpu,
  variant: BatchNormVariant,
  shape: { precision?: Precision; runs: number; rows: number; features: number; momentum: number },
  views: Record<string, TensorView | undefined>,
  scalars?: GPUBuffer,
): Dispatch {
  const { precision = "f32", runs, rows, features } = shape;
  assertCounts("batchnorm", { runs, rows, features });
  const lengthOf = (s: string) =>
    s === "unit_sq" ? 1 : PER_FEATURE.includes(s) ? features : rows * features;
  const bound = Object.entries(views).flatMap(([s, view]) =>
    view ? [[s, { view, length: lengthOf(s) }]] : []
  );
  return batchNormInterface(variant, precision).dispatch(gpu, {
    code: batchNormWgsl(variant, precision),
    dims: { rows, features },
    reals: { momentum: shape.momentum },
    views: Object.fromEntries(bound),
    runs,
    workgroups: [ceilDiv(features, featureTile(variant.lanes)), 1, runs],
    scalars,
  });
}

/**
 * BatchNorm forward = reference `batchNormForward` (+ `updateRunningStats`) in train mode,
 * `batchNormEval` in eval mode; eps is read per run from `scalars[run][epsField]` every step.
 */
export function batchNormForwardKernel(gpu: Gpu, spec: BatchNormForwardSpec): Dispatch {
  const train = spec.mode === "train";
  const run = spec.running;
  if (!!spec.gamma !== !!spec.beta) throw new Error("batchnorm: gamma and beta go together");
  if (!!spec.xhat !== !!spec.invStd) throw new Error("batchnorm: xhat and invStd go together");
  if (!train && spec.xhat) throw new Error("batchnorm: eval mode saves no xhat/invStd");
  if (!train && !run) throw new Error("batchnorm: eval mode needs running statistics");
  if (!train && run?.update) throw new Error("batchnorm: eval mode cannot update running stats");
  const variant: BatchNormVariant = {
    pass: "forward",
    mode: spec.mode,
    affine: !!spec.gamma,
    save: !!spec.xhat,
    update: train && !!run?.update,
    unit: !!run?.unit,
    epsField: spec.epsField,
    lanes: batchNormLanes(spec.rows),
  };
  return build(gpu, variant, { ...spec, momentum: run?.momentum ?? 0 }, {
    x: spec.x,
    y: spec.y,
    xhat: spec.xhat,
    inv_std: spec.invStd,
    gamma: spec.gamma,
    beta: spec.beta,
    run_mean: run?.mean,
    run_var: run?.var,
    unit_sq: run?.unit,
  }, spec.scalars);
}

/** BatchNorm backward (training mode) = reference `batchNormBackward`; outputs are overwritten. */
export function batchNormBackwardKernel(gpu: Gpu, spec: BatchNormBackwardSpec): Dispatch {
  const variant: BatchNormVariant = {
    pass: "backward",
    gamma: !!spec.gamma,
    dgamma: !!spec.dgamma,
    dbeta: !!spec.dbeta,
    lanes: batchNormLanes(spec.rows),
  };
  return build(gpu, variant, { ...spec, momentum: 0 }, {
    dy: spec.dy,
    xhat: spec.xhat,
    inv_std: spec.invStd,
    gamma: spec.gamma,
    dx: spec.dx,
    dgamma: spec.dgamma,
    dbeta: spec.dbeta,
  });
}
