/**
 * ReLU forward (y = max(x, 0)) and backward from the forward's output (dx = dy where y > 0),
 * elementwise over `count` elements per run, from one template. The flat element index is
 * folded over workgroup_id.x/y (at most 65535 workgroups per dimension); the run is
 * workgroup_id.z. Bindings are `read_write` so any two views may share a buffer (in place
 * included; wgpu rejects a buffer bound both read-only and read-write in one dispatch).
 *
 * @module
 */

import {
  bindBuffers,
  ceilDiv,
  type Dispatch,
  type Gpu,
  type TensorView,
  uniformBuffer,
} from "../stages/gpu.ts";

const WORKGROUP = 256;
const MAX_GROUPS_X = 65535;

/** Forward: (x) -> y. Backward: (dy, y) -> dx. */
export type ReluDirection = "forward" | "backward";

/** ReLU forward: y = max(x, 0) over `count` elements per run (x and y may be the same view). */
export interface ReluForwardSpec {
  runs: number;
  /** Elements per run. */
  count: number;
  x: TensorView;
  y: TensorView;
}

/** ReLU backward: dx = dy where y > 0 else 0 (dx may be the same view as dy). */
export interface ReluBackwardSpec {
  runs: number;
  count: number;
  dy: TensorView;
  /** The forward's output. */
  y: TensorView;
  dx: TensorView;
}

/** Tensor bindings in binding order (after the uniform): inputs, then the output. */
function slots(direction: ReluDirection): string[] {
  return direction === "forward" ? ["x", "y"] : ["dy", "y", "dx"];
}

/** WGSL of the ReLU forward or backward, from one template. */
export function reluWgsl(direction: ReluDirection): string {
  const names = slots(direction);
  const fields = names.map((s) => `  ${s}_off: u32, ${s}_stride: u32,`).join("\n");
  const bindings = names
    .map((s, i) => `@group(0) @binding(${i + 1}) var<storage, read_write> ${s}: array<f32>;`)
    .join("\n");
  // `select` (not max) so a NaN input gives 0 exactly as the reference's `v > 0 ? v : 0`.
  const body = direction === "forward"
    ? `  let v = x[u.x_off + r * u.x_stride + i];
  y[u.y_off + r * u.y_stride + i] = select(0.0, v, v > 0.0);`
    : `  let keep = y[u.y_off + r * u.y_stride + i] > 0.0;
  let g = dy[u.dy_off + r * u.dy_stride + i];
  dx[u.dx_off + r * u.dx_stride + i] = select(0.0, g, keep);`;
  return /* wgsl */ `
struct Shape {
  count: u32, pad: u32,
${fields}
}
@group(0) @binding(0) var<uniform> u: Shape;
${bindings}

@compute @workgroup_size(${WORKGROUP})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = (wid.y * groups.x + wid.x) * ${WORKGROUP}u + lid;
  let r = wid.z;
  if (i >= u.count) { return; }
${body}
}
`;
}

function build(
  gpu: Gpu,
  direction: ReluDirection,
  runs: number,
  count: number,
  views: TensorView[],
): Dispatch {
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`relu: runs must be >= 1, got ${runs}`);
  if (!Number.isInteger(count) || count < 1) {
    throw new Error(`relu: count must be >= 1, got ${count}`);
  }
  const words = new Uint32Array(2 + 2 * views.length);
  words[0] = count;
  views.forEach((v, i) => {
    words[2 + 2 * i] = v.offset;
    words[3 + 2 * i] = v.runStride;
  });
  const pipeline = gpu.pipeline(reluWgsl(direction));
  const uniform = uniformBuffer(gpu, words, `relu ${direction} shape`);
  const bindGroup = bindBuffers(gpu, pipeline, [uniform, ...views.map((v) => v.buffer)]);
  const groups = ceilDiv(count, WORKGROUP);
  const x = Math.min(groups, MAX_GROUPS_X);
  return { pipeline, bindGroup, workgroups: [x, ceilDiv(groups, x), runs] };
}

/** ReLU forward = reference `reluForward`, per run. */
export function reluForwardKernel(gpu: Gpu, spec: ReluForwardSpec): Dispatch {
  return build(gpu, "forward", spec.runs, spec.count, [spec.x, spec.y]);
}

/** ReLU backward = reference `reluBackward`, per run; dx is overwritten, not accumulated. */
export function reluBackwardKernel(gpu: Gpu, spec: ReluBackwardSpec): Dispatch {
  return build(gpu, "backward", spec.runs, spec.count, [spec.dy, spec.y, spec.dx]);
}
