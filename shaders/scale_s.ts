/**
 * Elementwise transforms of group S = [0, sEnd) of every run, from one WGSL template:
 *
 * - "rescale" (THEORY §4, Lemma 2): p *= s, buf /= s with s = RunScalars.rescale (1 for runs not
 *   rescaled). For a power-of-two s, 1/s is built exactly with ldexp (WGSL division is only
 *   2.5 ULP accurate), so both products are exact in every precision (df64: unless a lo part
 *   falls into the subnormals): the rescale adds no rounding. Any other s multiplies buf by a
 *   rounded 1/s.
 * - "rescale-stats": the same rescale seen by plain BatchNorm running statistics, whose inputs
 *   scale by s: mean *= s, var *= s^2 (weight-norm statistics are invariant and need none).
 *
 * One template in every precision (`precision.ts`): the factors come from RunScalars as R and
 * the products are R's.
 *
 * @module
 */

import { ELEMENTWISE_WG, gridStride, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";

/** Which transform {@link scaleSWgsl} generates. */
export type ScaleSVariant = "rescale" | "rescale-stats";

/** Both variants write params and bufs in place (mean and var, for the statistics). */
function scaleSInterface(variant: ScaleSVariant, precision: Precision): KernelInterface {
  return new KernelInterface(variant, {
    precision,
    dims: ["s_end"],
    slots: ["params", "bufs"].map((name) => ({ name, access: "read_write" })),
    runScalars: true,
  });
}

/** WGSL of one variant: one invocation per S element (grid-stride), run in `workgroup_id.z`. */
export function scaleSWgsl(variant: ScaleSVariant, precision: Precision = "f32"): string {
  const setup = variant === "rescale-stats"
    ? `let s = sc.rescale;
  let b0 = at_bufs(r, 0u);`
    : `let s = sc.rescale;
  let f = frexp(r_hi(s));
  // s = 2^(e-1) exactly when it is a float32 (df64: lo = 0) of mantissa 1/2: then 1/s = 2^(1-e),
  // exact; else a rounded 1/s.
  let pow2 = f.fract == 0.5 && all(s == r_f(r_hi(s)));
  let inv = select(r_div(r_f(1.0), s), r_f(ldexp(1.0, 1 - f.exp)), pow2);
  let b0 = at_bufs(r, 0u);`;
  const body = `params[p0 + i] = r_mul(params[p0 + i], s);
    bufs[b0 + i] = r_mul(bufs[b0 + i], ${variant === "rescale" ? "inv" : "r_mul(s, s)"});`;
  return /* wgsl */ `${scaleSInterface(variant, precision).wgsl}

@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>) {
  let r = wid.z;
  let sc = scalars[r];
  let p0 = at_params(r, 0u);
  ${setup}
  for (var i = gid.x; i < u.s_end; i += groups.x * ${ELEMENTWISE_WG}u) {
    ${body}
  }
}`;
}

function scaleSDispatch(
  gpu: Gpu,
  variant: ScaleSVariant,
  precision: Precision,
  runs: number,
  sEnd: number,
  params: TensorView,
  bufs: TensorView,
  scalars: GPUBuffer,
): Dispatch {
  return scaleSInterface(variant, precision).dispatch(gpu, {
    code: scaleSWgsl(variant, precision),
    dims: { s_end: sEnd },
    views: {
      params: { view: params, length: sEnd },
      bufs: { view: bufs, length: sEnd },
    },
    runs,
    workgroups: gridStride(sEnd, runs),
    scalars,
  });
}

/** Shapes of {@link rescaleKernel}. */
export interface RescaleSpec {
  /** Arithmetic of the views and the scalars (default f32). */
  precision?: Precision;
  runs: number;
  sEnd: number;
  params: TensorView;
  /** Momentum buffers (may share params' buffer at a disjoint range). */
  bufs: TensorView;
  /** `array<RunScalars>` of the same precision; `.rescale` is s (1 for runs not rescaled). */
  scalars: GPUBuffer;
}

/** Lemma 2 on group S of every run: p *= s, buf /= s (exact for s a power of two). */
export function rescaleKernel(gpu: Gpu, spec: RescaleSpec): Dispatch {
  const { precision = "f32", runs, sEnd, params, bufs, scalars } = spec;
  return scaleSDispatch(gpu, "rescale", precision, runs, sEnd, params, bufs, scalars);
}

/** Shapes of {@link rescaleStatsKernel}. */
export interface RescaleStatsSpec {
  /** Arithmetic of the views and the scalars (default f32). */
  precision?: Precision;
  runs: number;
  /** Running-statistics entries per run. */
  size: number;
  mean: TensorView;
  var: TensorView;
  /** `array<RunScalars>` of the same precision; `.rescale` is s (1 for runs not rescaled). */
  scalars: GPUBuffer;
}

/** Lemma 2 on plain running statistics: mean *= s, var *= s^2 (exact for s a power of two). */
export function rescaleStatsKernel(gpu: Gpu, spec: RescaleStatsSpec): Dispatch {
  const { precision = "f32", runs, size, mean, scalars } = spec;
  return scaleSDispatch(gpu, "rescale-stats", precision, runs, size, mean, spec.var, scalars);
}
