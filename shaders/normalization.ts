/**
 * The views and flags every normalization kernel takes (BatchNorm in `batchnorm.ts`, GroupNorm
 * and LayerNorm in `groupnorm.ts`), declared once; each kernel's spec adds its own shape. The
 * forward may write relu(y) (fused with the ReLU that follows) and save what its backward reads.
 * BatchNorm's and GroupNorm's kernel builders take a tiling (a tuner's parameter), checked here
 * ({@link normalizationTiling}).
 *
 * @module
 */

import type { TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";

/** Inputs and outputs of a normalization's forward. */
export interface NormalizationForwardViews {
  /** Arithmetic of the views and of eps (default f32). */
  precision?: Precision;
  runs: number;
  /** Input. */
  x: TensorView;
  /** Output, as large as x: y, or relu(y) with `relu`. */
  y: TensorView;
  /** Apply the following ReLU: y = relu(norm(x)) (reference: the norm, then reluForward). */
  relu?: boolean;
  /** Normalised input saved for the backward, as large as x (with invStd or neither). */
  xhat?: TensorView;
  /** 1/sqrt(var + eps) of every statistic, saved for the backward. */
  invStd?: TensorView;
  /** Affine scale per channel (with beta or neither). */
  gamma?: TensorView;
  /** Affine shift per channel. */
  beta?: TensorView;
  /** array<RunScalars>, one record per run. */
  scalars: GPUBuffer;
  /** Which RunScalars field holds this forward's eps. */
  epsField: "eps" | "eps_next";
}

/** Inputs and outputs of a normalization's backward; dx, dgamma, dbeta are written. */
export interface NormalizationBackwardViews {
  /** Arithmetic of the views (default f32). */
  precision?: Precision;
  runs: number;
  /** Gradient of the forward's output (of relu(y) when `y` is given). */
  dy: TensorView;
  xhat: TensorView;
  invStd: TensorView;
  gamma?: TensorView;
  /** The fused forward's output relu(y): dy counts only where it is > 0 (ReLU's backward). */
  y?: TensorView;
  dx: TensorView;
  dgamma?: TensorView;
  dbeta?: TensorView;
}

/**
 * A forward's flags and its views by slot name (after checking that gamma and beta, and xhat and
 * invStd, come in pairs); `kernel` names it in an error.
 */
export function forwardSlots(kernel: string, v: NormalizationForwardViews) {
  if (!!v.gamma !== !!v.beta) throw new Error(`${kernel}: gamma and beta go together`);
  if (!!v.xhat !== !!v.invStd) throw new Error(`${kernel}: xhat and invStd go together`);
  return {
    flags: { affine: !!v.gamma, save: !!v.xhat, relu: !!v.relu, epsField: v.epsField },
    views: {
      x: v.x,
      y: v.y,
      xhat: v.xhat,
      inv_std: v.invStd,
      gamma: v.gamma,
      beta: v.beta,
    } as Record<string, TensorView | undefined>,
  };
}

/** A backward's flags and its views by slot name. */
export function backwardSlots(v: NormalizationBackwardViews) {
  return {
    flags: { gamma: !!v.gamma, dgamma: !!v.dgamma, dbeta: !!v.dbeta, relu: !!v.y },
    views: {
      dy: v.dy,
      xhat: v.xhat,
      inv_std: v.invStd,
      gamma: v.gamma,
      y: v.y,
      dx: v.dx,
      dgamma: v.dgamma,
      dbeta: v.dbeta,
    } as Record<string, TensorView | undefined>,
  };
}

/**
 * Largest workgroup a normalization's tiling may name: WebGPU's default
 * maxComputeInvocationsPerWorkgroup and maxComputeWorkgroupSizeX (what every adapter offers).
 */
export const MAX_NORMALIZATION_WORKGROUP = 256;

/**
 * `defaults` with the fields `tiling` gives (an undefined field keeps its default), checked:
 * every field a positive integer, `workgroup` a power of two of at most
 * {@link MAX_NORMALIZATION_WORKGROUP}, no field `defaults` lacks; else throws
 * "`kernel`: bad tiling {...}" (the tiling asked for, defaults filled in).
 */
export function normalizationTiling<T extends { workgroup: number }>(
  kernel: string,
  defaults: T,
  tiling: Partial<T> = {},
): T {
  const t: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(tiling)) if (v !== undefined) t[k] = v;
  const positive = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 1;
  const w = t.workgroup as number;
  const ok = Object.keys(t).every((k) => k in defaults && positive(t[k])) &&
    w <= MAX_NORMALIZATION_WORKGROUP && (w & (w - 1)) === 0;
  if (!ok) throw new Error(`${kernel}: bad tiling ${JSON.stringify(t)}`);
  return t as T;
}
