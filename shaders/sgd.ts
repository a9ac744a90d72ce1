/**
 * SGD with momentum (THEORY §2, reference `sgdStep`) over all runs and the whole flat parameter
 * vector in one dispatch. Group S = [0, sEnd) uses the run's (lr_s, wd_s, shrink_s), group O =
 * [sEnd, size) its (lr_o, wd_o, shrink_o); all are read from the `array<RunScalars>` buffer the
 * CPU rewrites every step, so one recorded Dispatch serves every step of every schedule.
 * Elementwise over a grid-stride loop capped at `ELEMENTWISE_MAX_GROUPS` workgroups per run
 * (see `binding.ts` for the measurement behind the cap).
 *
 * One template in every precision (`precision.ts`): df64 and f64 carry the whole update, the
 * RunScalars reals included, in R, in the operation order of the float32 step and of the
 * reference. Lavapipe, 3 × 270k elements, best of 8 with other jobs on the 2 cores: f32 5.8 ms
 * (as the plain-operator body it replaced), df64 13.6 ms.
 *
 * The "previous" variant also stores the weights of S before the update (the angular update of
 * metered steps): one more store in a pass that streams the vectors anyway, where a separate
 * buffer copy cost 6.6 ms of a 70 ms metered MLP step (R = 3) on lavapipe.
 *
 * Aliasing: params, bufs and previous are writable and may share a buffer (disjoint ranges);
 * grads is read-only and must live in a buffer that is none of those (WebGPU usage scopes).
 *
 * @module
 */

import { ELEMENTWISE_WG, gridStride, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";

/** The interface, with the slot of the weights before the update when `previous`. */
function sgdInterface(previous: boolean, precision: Precision): KernelInterface {
  return new KernelInterface("sgd", {
    precision,
    dims: ["size", "s_end"],
    slots: [
      { name: "params", access: "read_write" },
      { name: "grads" },
      { name: "bufs", access: "read_write" },
      ...(previous ? [{ name: "previous", access: "read_write" as const }] : []),
    ],
    runScalars: true,
  });
}

/**
 * WGSL of the step: one invocation per element (grid-stride), run in `workgroup_id.z`; with
 * `previous`, S's weights before the update are stored too.
 */
export function sgdWgsl(previous = false, precision: Precision = "f32"): string {
  return /* wgsl */ `${sgdInterface(previous, precision).wgsl}

@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>) {
  let r = wid.z;
  let sc = scalars[r];
  let p0 = at_params(r, 0u);
  let g0 = at_grads(r, 0u);
  let b0 = at_bufs(r, 0u);
  for (var i = gid.x; i < u.size; i += groups.x * ${ELEMENTWISE_WG}u) {
    let in_s = i < u.s_end;
    let lr = select(sc.lr_o, sc.lr_s, in_s);
    let wd = select(sc.wd_o, sc.wd_s, in_s);
    let keep = r_sub(r_f(1.0), select(sc.shrink_o, sc.shrink_s, in_s));
    let p = params[p0 + i];
    ${previous ? "if (in_s) { previous[at_previous(r, i)] = p; }" : ""}
    let g = r_add(grads[g0 + i], r_mul(wd, p));
    let buf = r_fma(sc.momentum, bufs[b0 + i], g);
    bufs[b0 + i] = buf;
    params[p0 + i] = r_sub(r_mul(keep, p), r_mul(lr, buf));
  }
}`;
}

/** Shapes of {@link sgdKernel}. */
export interface SgdSpec {
  /** Arithmetic of params, grads, bufs, previous and the scalars (default f32). */
  precision?: Precision;
  runs: number;
  /** Elements per run of the flat vector. */
  size: number;
  /** Group S is [0, sEnd). */
  sEnd: number;
  params: TensorView;
  grads: TensorView;
  /** Momentum buffers, same layout as params. */
  bufs: TensorView;
  /** `array<RunScalars>` of the same precision, one record per run (`packRunScalars`). */
  scalars: GPUBuffer;
  /** Where to store S's weights before the update (sEnd elements per run), if anywhere. */
  previous?: TensorView;
}

/**
 * One SGD step, all runs: g = grad + wd p; buf = momentum buf + g; p = (1-shrink) p - lr buf;
 * with `previous`, S's p before the step is stored there.
 */
export function sgdKernel(gpu: Gpu, spec: SgdSpec): Dispatch {
  const { precision = "f32", runs, size, sEnd, params, grads, bufs, scalars, previous } = spec;
  if (!(sEnd >= 0 && sEnd <= size)) throw new Error(`sgd: sEnd ${sEnd} outside [0, ${size}]`);
  const keeping = previous !== undefined;
  return sgdInterface(keeping, precision).dispatch(gpu, {
    code: sgdWgsl(keeping, precision),
    dims: { size, s_end: sEnd },
    views: {
      params: { view: params, length: size },
      grads: { view: grads, length: size },
      bufs: { view: bufs, length: size },
      ...(previous && { previous: { view: previous, length: Math.max(sEnd, 1) } }),
    },
    runs,
    workgroups: gridStride(size, runs),
    scalars,
  });
}
