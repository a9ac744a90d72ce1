/**
 * Float64 twin of the GroupNorm kernels (`shaders/groupnorm.ts`); LayerNorm is GroupNorm with
 * one group. One run at a time over a [rows, spatial, channels] activation (NHWC per example;
 * element (n, s, c) at (n*spatial + s)*channels + c). Statistics are per example and group of
 * channels / groups consecutive channels over every position, so eval equals training and there
 * are no running statistics.
 *
 * Design: sums in plain left-to-right order, two passes for the variance (mean, then squared
 * deviations): the references are written for obviousness; float64 makes their rounding
 * negligible against the kernels' tolerances.
 *
 * @module
 */

import type { GroupNormGeometry } from "../core/graph.ts";
import type { Vec } from "./ops.ts";

/** What the GroupNorm forward keeps for its backward. */
export interface GroupNormCache {
  /** Normalised input (x - mean) * invStd, [rows*spatial*channels]. */
  xhat: Float64Array;
  /** Per example and group, [rows*groups] (index n*groups + g). */
  mean: Float64Array;
  /** 1/sqrt(var + eps) with the biased variance, [rows*groups]. */
  invStd: Float64Array;
}

/** Throws unless `g` is a valid geometry (positive integers, channels divisible by groups). */
function assertGroupNormGeometry(g: GroupNormGeometry): void {
  for (const [name, v] of Object.entries(g)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`groupnorm: ${name} = ${v}`);
  }
  if (g.channels % g.groups !== 0) {
    throw new Error(`groupnorm: ${g.channels} channels do not split into ${g.groups} groups`);
  }
}

/**
 * Calls `each(k, c)` for every element of example `n`'s group `grp`, in (position, channel)
 * order: k its index, c its channel.
 */
function forGroup(
  g: GroupNormGeometry,
  n: number,
  grp: number,
  each: (k: number, c: number) => void,
): void {
  const cg = g.channels / g.groups;
  for (let s = 0; s < g.spatial; s++) {
    const base = (n * g.spatial + s) * g.channels;
    for (let c = grp * cg; c < (grp + 1) * cg; c++) each(base + c, c);
  }
}

/**
 * GroupNorm forward: per example n and group, xhat = (x - mean) / sqrt(var + eps) (biased
 * variance over the group's spatial·channels/groups elements), y = gamma[c]·xhat + beta[c]
 * (y = xhat without gamma and beta).
 */
export function groupNormForward(
  x: Vec,
  g: GroupNormGeometry,
  eps: number,
  gamma?: Vec,
  beta?: Vec,
): { y: Float64Array } & GroupNormCache {
  assertGroupNormGeometry(g);
  const size = g.rows * g.spatial * g.channels;
  const len = g.spatial * (g.channels / g.groups);
  const y = new Float64Array(size), xhat = new Float64Array(size);
  const mean = new Float64Array(g.rows * g.groups), invStd = new Float64Array(g.rows * g.groups);
  for (let n = 0; n < g.rows; n++) {
    for (let grp = 0; grp < g.groups; grp++) {
      let s = 0;
      forGroup(g, n, grp, (k) => (s += x[k]));
      const mu = s / len;
      let q = 0;
      forGroup(g, n, grp, (k) => (q += (x[k] - mu) ** 2));
      const inv = 1 / Math.sqrt(q / len + eps);
      mean[n * g.groups + grp] = mu;
      invStd[n * g.groups + grp] = inv;
      forGroup(g, n, grp, (k, c) => {
        const h = (x[k] - mu) * inv;
        xhat[k] = h;
        y[k] = gamma && beta ? gamma[c] * h + beta[c] : h;
      });
    }
  }
  return { y, xhat, mean, invStd };
}

/**
 * GroupNorm backward: with dh = dy·gamma[c] (dy without gamma), per example and group of L
 * elements dx = invStd/L · (L·dh - Σdh - xhat·Σ(dh·xhat)); dgamma[c] = Σ dy·xhat and
 * dbeta[c] = Σ dy over every example and position.
 */
export function groupNormBackward(
  dy: Vec,
  cache: GroupNormCache,
  g: GroupNormGeometry,
  gamma?: Vec,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  assertGroupNormGeometry(g);
  const { xhat, invStd } = cache;
  const len = g.spatial * (g.channels / g.groups);
  const dx = new Float64Array(g.rows * g.spatial * g.channels);
  const dgamma = new Float64Array(g.channels), dbeta = new Float64Array(g.channels);
  const dh = (k: number, c: number) => (gamma ? dy[k] * gamma[c] : dy[k]);
  for (let n = 0; n < g.rows; n++) {
    for (let grp = 0; grp < g.groups; grp++) {
      let sdh = 0, sdhx = 0;
      forGroup(g, n, grp, (k, c) => {
        sdh += dh(k, c);
        sdhx += dh(k, c) * xhat[k];
        dgamma[c] += dy[k] * xhat[k];
        dbeta[c] += dy[k];
      });
      const scale = invStd[n * g.groups + grp] / len;
      forGroup(g, n, grp, (k, c) => {
        dx[k] = scale * (len * dh(k, c) - sdh - xhat[k] * sdhx);
      });
    }
  }
  return { dx, dgamma, dbeta };
}
