/**
 * Elementwise addition out = a + b over `count` elements per run: the residual addition of a
 * forward, and the accumulation of gradients where an activation feeds two consumers
 * (dx += contribution, with `out` the same view as `a`). A grid-stride loop over the elements;
 * the run is workgroup_id.z. One template in every precision (`precision.ts`): float32 adds
 * correctly rounded, df64 to ~2^-47 relative. Every slot is `read_write`, so `out` may alias `a`
 * or `b` (in place) and any of the three may share a buffer. `out` is overwritten. Reference:
 * `add` in `reference/pool.ts`.
 *
 * Cost on lavapipe (2 shared cores, noisy): 3 × 524,288 elements, df64 1.2–1.7x f32's 29–33 ms
 * (memory-bound: pairs are 8 bytes).
 *
 * @module
 */

import { assertCounts, ELEMENTWISE_WG, gridStride, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";

/** out = a + b elementwise, `count` elements per run; out may be the same view as a or b. */
export interface AddSpec {
  /** Arithmetic of the views' elements (default f32). */
  precision?: Precision;
  runs: number;
  /** Elements per run. */
  count: number;
  a: TensorView;
  b: TensorView;
  out: TensorView;
}

const rw = (name: string) => ({ name, access: "read_write" as const });
function addInterface(precision: Precision): KernelInterface {
  return new KernelInterface("add", {
    precision,
    dims: ["count"],
    slots: [rw("a"), rw("b"), rw("out")],
  });
}

/** WGSL of the addition kernel. */
export function addWgsl(precision: Precision = "f32"): string {
  return /* wgsl */ `${addInterface(precision).wgsl}

@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let r = wid.z;
  for (var i = wid.x * ${ELEMENTWISE_WG}u + lid; i < u.count; i += groups.x * ${ELEMENTWISE_WG}u) {
    out[at_out(r, i)] = r_add(a[at_a(r, i)], b[at_b(r, i)]);
  }
}
`;
}

/** out = a + b = reference `add`, per run. */
export function addKernel(gpu: Gpu, spec: AddSpec): Dispatch {
  const { precision = "f32", runs, count } = spec;
  assertCounts("add", { runs, count });
  const bound = (view: TensorView) => ({ view, length: count });
  return addInterface(precision).dispatch(gpu, {
    code: addWgsl(precision),
    dims: { count },
    views: { a: bound(spec.a), b: bound(spec.b), out: bound(spec.out) },
    runs,
    workgroups: gridStride(count, runs),
  });
}
