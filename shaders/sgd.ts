/**
 * SGD with momentum (THEORY §2, reference `sgdStep`) over all runs and the whole flat parameter
 * vector in one dispatch. Group S = [0, sEnd) uses the run's (lr_s, wd_s, shrink_s), group O =
 * [sEnd, size) its (lr_o, wd_o, shrink_o); all are read from the `array<RunScalars>` buffer the
 * CPU rewrites every step, so one recorded Dispatch serves every step of every schedule.
 *
 * Aliasing: params and bufs are writable and may share a buffer (disjoint ranges); grads is
 * read-only and must live in a buffer that is neither of those (WebGPU usage scopes).
 *
 * @module
 */

import {
  bindBuffers,
  type Dispatch,
  type Gpu,
  RUN_SCALARS_WGSL,
  type TensorView,
  uniformBuffer,
} from "./gpu.ts";
import { ceilDiv } from "./binding.ts";
import { assertViewFits } from "./reduce.ts";

/** Invocations per workgroup of the elementwise optimizer kernels. */
export const ELEMENTWISE_WG = 256;
/**
 * Cap on workgroups along x; larger vectors are covered by a grid-stride loop. On lavapipe each
 * workgroup costs a few microseconds of its own: the SGD step over 3 × 270k elements took
 * 10.7 ms with up to 4096 workgroups per run, 5.4 ms with 256, 4.5 ms with 64 (16: 4.3 ms).
 */
export const ELEMENTWISE_MAX_GROUPS = 64;

/** WGSL of the step: one invocation per element (grid-stride), run in `workgroup_id.z`. */
export function sgdWgsl(): string {
  return /* wgsl */ `
${RUN_SCALARS_WGSL}
struct Shape {
  size: u32, s_end: u32, p_off: u32, p_stride: u32,
  g_off: u32, g_stride: u32, b_off: u32, b_stride: u32,
}
@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> scalars: array<RunScalars>;
@group(0) @binding(2) var<storage, read_write> params: array<f32>;
@group(0) @binding(3) var<storage, read> grads: array<f32>;
@group(0) @binding(4) var<storage, read_write> bufs: array<f32>;

@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>) {
  let r = wid.z;
  let sc = scalars[r];
  let p0 = shape.p_off + r * shape.p_stride;
  let g0 = shape.g_off + r * shape.g_stride;
  let b0 = shape.b_off + r * shape.b_stride;
  for (var i = gid.x; i < shape.size; i += groups.x * ${ELEMENTWISE_WG}u) {
    let in_s = i < shape.s_end;
    let lr = select(sc.lr_o, sc.lr_s, in_s);
    let wd = select(sc.wd_o, sc.wd_s, in_s);
    let keep = 1.0 - select(sc.shrink_o, sc.shrink_s, in_s);
    let p = params[p0 + i];
    let g = grads[g0 + i] + wd * p;
    let buf = sc.momentum * bufs[b0 + i] + g;
    bufs[b0 + i] = buf;
    params[p0 + i] = keep * p - lr * buf;
  }
}`;
}

/** Shapes of {@link sgdKernel}. */
export interface SgdSpec {
  runs: number;
  /** Elements per run of the flat vector. */
  size: number;
  /** Group S is [0, sEnd). */
  sEnd: number;
  params: TensorView;
  grads: TensorView;
  /** Momentum buffers, same layout as params. */
  bufs: TensorView;
  /** `array<RunScalars>`, one record per run (RUN_SCALARS). */
  scalars: GPUBuffer;
}

/** One SGD step, all runs: g = grad + wd p; buf = momentum buf + g; p = (1-shrink) p - lr buf. */
export function sgdKernel(gpu: Gpu, spec: SgdSpec): Dispatch {
  const { runs, size, sEnd, params, grads, bufs, scalars } = spec;
  if (!(sEnd >= 0 && sEnd <= size)) throw new Error(`sgd: sEnd ${sEnd} outside [0, ${size}]`);
  assertViewFits("sgd params", params, runs, size);
  assertViewFits("sgd grads", grads, runs, size);
  assertViewFits("sgd bufs", bufs, runs, size);
  const pipeline = gpu.pipeline(sgdWgsl());
  const words = [
    size,
    sEnd,
    params.offset,
    params.runStride,
    grads.offset,
    grads.runStride,
    bufs.offset,
    bufs.runStride,
  ];
  const uniform = uniformBuffer(gpu, Uint32Array.from(words), "sgd shape");
  const groups = Math.max(1, Math.min(ceilDiv(size, ELEMENTWISE_WG), ELEMENTWISE_MAX_GROUPS));
  return {
    pipeline,
    bindGroup: bindBuffers(gpu, pipeline, [
      uniform,
      scalars,
      params.buffer,
      grads.buffer,
      bufs.buffer,
    ]),
    workgroups: [groups, 1, runs],
  };
}
