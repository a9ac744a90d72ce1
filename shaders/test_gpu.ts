/**
 * The one way GPU tests register: {@link gpuTest} runs `fn` with the process's GPU; the
 * sanitizers are off because the GPU (device, pipeline cache, pending maps) deliberately
 * outlives every test. Random inputs exact in a kernel's precision: `randomReals`
 * (`precision.ts`) and {@link stackedReals}.
 *
 * @module
 */

import type { Rng } from "../core/prng.ts";
import { stacked } from "../core/test_util.ts";
import { acquireGpu, type Gpu, packRunScalars, type TensorView, uploadBuffer } from "./gpu.ts";
import { heldReals, type Precision, randomReals } from "./precision.ts";

/**
 * Registers a Deno test that acquires the process-wide GPU and passes it to `fn` (reported as
 * ignored when `options.ignore`).
 */
export function gpuTest(
  name: string,
  fn: (gpu: Gpu) => Promise<void> | void,
  options: { ignore?: boolean } = {},
): void {
  Deno.test({
    name,
    ignore: options.ignore ?? false,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await fn(await acquireGpu());
    },
  });
}

/** `stacked` blocks of `size` fresh {@link randomReals} in [lo, hi) (core/test_util.ts). */
export function stackedReals(
  rng: Rng,
  precision: Precision,
  runs: number,
  size: number,
  stride: number,
  offset: number,
  lo = -1,
  hi = 1,
): Float64Array {
  const make = (n: number) => new Float64Array(n);
  return stacked(make, () => randomReals(rng, precision, size, lo, hi), runs, stride, offset);
}

/** Largest |a[i]|. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/**
 * A RunScalars buffer for the normalization tests: a distinct eps and eps_next per run, every
 * other field zero or neutral; returns the eps values as the precision holds them.
 */
export function epsScalars(gpu: Gpu, p: Precision, eps: number[], epsNext: number[]) {
  const zero = { lrS: 0, wdS: 0, shrinkS: 0, lrO: 0, wdO: 0, shrinkO: 0, momentum: 0 };
  const records = eps.map((e, r) => ({
    ...zero,
    eps: e,
    rescale: 1,
    perturb: 0,
    epsNext: epsNext[r],
    seed: 0,
    step: 0,
  }));
  const buffer = uploadBuffer(gpu, packRunScalars(p, records), "run scalars");
  return { buffer, eps: [...heldReals(p, eps)], epsNext: [...heldReals(p, epsNext)] };
}

/** A 1 MiB view shared by all runs on `gpu` (a dry one: kernel builders' refusals, no GPU). */
export function dryView(gpu: Gpu): TensorView {
  return { buffer: gpu.device.createBuffer({ size: 1 << 20, usage: 0 }), offset: 0, runStride: 0 };
}
