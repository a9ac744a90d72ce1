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
 * - "perturb" (the control run A2, THEORY §6): p *= 1 + perturb * xi, xi = ±1 from a stateless
 *   hash of (seed, step, run, i); runs with perturb == 0 are not touched at all. `perturbSign`
 *   in `reference/ops.ts` is the hash's TypeScript twin, so a float64 reference replays it.
 *
 * One template in every precision (`precision.ts`): the factors come from RunScalars as R and
 * the products are R's; only the hash's ±1 is float32 (exact in any precision).
 *
 * @module
 */

import { ELEMENTWISE_WG, gridStride, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";

/** Which transform {@link scaleSWgsl} generates. */
export type ScaleSVariant = "rescale" | "rescale-stats" | "perturb";

const HASH_WGSL = /* wgsl */ `
fn mix(x0: u32) -> u32 {
  var x = x0;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  return x ^ (x >> 16u);
}
// The per-run prefix mix(mix(mix(seed) + step) + run) is the same for every element.
fn run_hash(seed: u32, step: u32, run: u32) -> u32 { return mix(mix(mix(seed) + step) + run); }
fn perturb_sign(prefix: u32, i: u32) -> f32 {
  return select(1.0, -1.0, mix(prefix + i) >= 0x80000000u);
}`;

/** Every variant writes params in place; the rescales also bufs (the running var, for stats). */
function scaleSInterface(variant: ScaleSVariant, precision: Precision): KernelInterface {
  const slots = variant === "perturb" ? ["params"] : ["params", "bufs"];
  return new KernelInterface(variant, {
    precision,
    dims: ["s_end"],
    slots: slots.map((name) => ({ name, access: "read_write" })),
    runScalars: true,
  });
}

/** WGSL of one variant: one invocation per S element (grid-stride), run in `workgroup_id.z`. */
export function scaleSWgsl(variant: ScaleSVariant, precision: Precision = "f32"): string {
  const rescale = variant !== "perturb";
  const setup = variant === "rescale-stats"
    ? `let s = sc.rescale;
  let b0 = at_bufs(r, 0u);`
    : rescale
    ? `let s = sc.rescale;
  let f = frexp(r_hi(s));
  // s = 2^(e-1) exactly when it is a float32 (df64: lo = 0) of mantissa 1/2: then 1/s = 2^(1-e),
  // exact; else a rounded 1/s.
  let pow2 = f.fract == 0.5 && all(s == r_f(r_hi(s)));
  let inv = select(r_div(r_f(1.0), s), r_f(ldexp(1.0, 1 - f.exp)), pow2);
  let b0 = at_bufs(r, 0u);`
    : `if (r_hi(sc.perturb) == 0.0) { return; } // untouched, not even rewritten
  let prefix = run_hash(sc.seed, sc.step, r);`;
  const body = rescale
    ? `params[p0 + i] = r_mul(params[p0 + i], s);
    bufs[b0 + i] = r_mul(bufs[b0 + i], ${variant === "rescale" ? "inv" : "r_mul(s, s)"});`
    : `let xi = r_f(perturb_sign(prefix, i));
    params[p0 + i] = r_mul(params[p0 + i], r_add(r_f(1.0), r_mul(sc.perturb, xi)));`;
  return /* wgsl */ `${scaleSInterface(variant, precision).wgsl}
${rescale ? "" : HASH_WGSL}

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
  bufs: TensorView | undefined,
  scalars: GPUBuffer,
): Dispatch {
  return scaleSInterface(variant, precision).dispatch(gpu, {
    code: scaleSWgsl(variant, precision),
    dims: { s_end: sEnd },
    views: {
      params: { view: params, length: sEnd },
      ...(bufs ? { bufs: { view: bufs, length: sEnd } } : {}),
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

/** Shapes of {@link perturbKernel}. */
export interface PerturbSpec {
  /** Arithmetic of the views and the scalars (default f32). */
  precision?: Precision;
  runs: number;
  sEnd: number;
  params: TensorView;
  /** `array<RunScalars>` of the same precision; `.perturb` (0 = untouched), `.seed`, `.step`. */
  scalars: GPUBuffer;
}

/** The control run's perturbation of group S: p *= 1 + perturb * perturbSign(seed, step, r, i). */
export function perturbKernel(gpu: Gpu, spec: PerturbSpec): Dispatch {
  const { precision = "f32", runs, sEnd, params, scalars } = spec;
  return scaleSDispatch(gpu, "perturb", precision, runs, sEnd, params, undefined, scalars);
}
