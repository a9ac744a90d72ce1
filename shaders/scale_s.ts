/**
 * Elementwise transforms of group S = [0, sEnd) of every run, from one WGSL template:
 *
 * - "rescale" (THEORY §4, Lemma 2): p *= s, buf /= s with s = RunScalars.rescale (1 for runs not
 *   rescaled). For a power-of-two s, 1/s is built exactly with ldexp (WGSL division is only
 *   2.5 ULP accurate), so both products are exact: the rescale adds no rounding.
 * - "rescale-stats": the same rescale seen by plain BatchNorm running statistics, whose inputs
 *   scale by s: mean *= s, var *= s^2 (weight-norm statistics are invariant and need none).
 * - "perturb" (the control run A2, THEORY §6): p *= 1 + perturb * xi, xi = ±1 from a stateless
 *   hash of (seed, step, run, i); runs with perturb == 0 are not touched at all.
 *   `perturbSign` in `reference/ops.ts` is the hash's TypeScript twin, so a float64 reference replays it.
 *
 * @module
 */

import { ELEMENTWISE_WG, gridStride, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";

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
function scaleSInterface(variant: ScaleSVariant, slots: string[]): KernelInterface {
  return new KernelInterface(variant, {
    dims: ["s_end"],
    slots: slots.map((name) => ({ name, access: "read_write" })),
    runScalars: true,
  });
}
const INTERFACES: Record<ScaleSVariant, KernelInterface> = {
  rescale: scaleSInterface("rescale", ["params", "bufs"]),
  "rescale-stats": scaleSInterface("rescale-stats", ["params", "bufs"]),
  perturb: scaleSInterface("perturb", ["params"]),
};

/** WGSL of one variant: one invocation per S element (grid-stride), run in `workgroup_id.z`. */
export function scaleSWgsl(variant: ScaleSVariant): string {
  const rescale = variant !== "perturb";
  const setup = variant === "rescale-stats"
    ? `let s = sc.rescale;
  let b0 = at_bufs(r, 0u);`
    : rescale
    ? `let s = sc.rescale;
  let f = frexp(s);
  // s = 2^(e-1) exactly when the mantissa is 1/2: then 1/s = 2^(1-e), exact; else plain 1/s.
  let inv = select(1.0 / s, ldexp(1.0, 1 - f.exp), f.fract == 0.5);
  let b0 = at_bufs(r, 0u);`
    : `if (sc.perturb == 0.0) { return; } // untouched, not even rewritten
  let prefix = run_hash(sc.seed, sc.step, r);`;
  const body = rescale
    ? `params[p0 + i] = params[p0 + i] * s;
    bufs[b0 + i] = bufs[b0 + i] * ${variant === "rescale" ? "inv" : "(s * s)"};`
    : `params[p0 + i] = params[p0 + i] * (1.0 + sc.perturb * perturb_sign(prefix, i));`;
  return /* wgsl */ `${INTERFACES[variant].wgsl}
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
  runs: number,
  sEnd: number,
  params: TensorView,
  bufs: TensorView | undefined,
  scalars: GPUBuffer,
): Dispatch {
  return INTERFACES[variant].dispatch(gpu, {
    code: scaleSWgsl(variant),
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
  runs: number;
  sEnd: number;
  params: TensorView;
  /** Momentum buffers (may share params' buffer at a disjoint range). */
  bufs: TensorView;
  /** `array<RunScalars>`; `.rescale` is s (1 for runs that are not rescaled). */
  scalars: GPUBuffer;
}

/** Lemma 2 on group S of every run: p *= s, buf /= s (exact for s a power of two). */
export function rescaleKernel(gpu: Gpu, spec: RescaleSpec): Dispatch {
  const { runs, sEnd, params, bufs, scalars } = spec;
  return scaleSDispatch(gpu, "rescale", runs, sEnd, params, bufs, scalars);
}

/** Shapes of {@link rescaleStatsKernel}. */
export interface RescaleStatsSpec {
  runs: number;
  /** Running-statistics entries per run. */
  size: number;
  mean: TensorView;
  var: TensorView;
  /** `array<RunScalars>`; `.rescale` is s (1 for runs that are not rescaled). */
  scalars: GPUBuffer;
}

/** Lemma 2 on plain running statistics: mean *= s, var *= s^2 (exact for s a power of two). */
export function rescaleStatsKernel(gpu: Gpu, spec: RescaleStatsSpec): Dispatch {
  const { runs, size, mean, scalars } = spec;
  return scaleSDispatch(gpu, "rescale-stats", runs, size, mean, spec.var, scalars);
}

/** Shapes of {@link perturbKernel}. */
export interface PerturbSpec {
  runs: number;
  sEnd: number;
  params: TensorView;
  /** `array<RunScalars>`; `.perturb` (0 = untouched), `.seed`, `.step`. */
  scalars: GPUBuffer;
}

/** The control run's perturbation of group S: p *= 1 + perturb * perturbSign(seed, step, r, i). */
export function perturbKernel(gpu: Gpu, spec: PerturbSpec): Dispatch {
  const { runs, sEnd, params, scalars } = spec;
  return scaleSDispatch(gpu, "perturb", runs, sEnd, params, undefined, scalars);
}
