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

/** Where one run-stacked tensor sits in a test buffer: first element, run stride, length. */
export interface Slot {
  offset: number;
  runStride: number;
  n: number;
}

/** Places run-stacked tensors one after another, with a gap and padded run strides. */
export class Arena {
  /** Elements placed so far (the buffer's length). */
  size = 0;

  /** A slot of `n` elements for each of `runs`, `pad` elements apart, one element after the last. */
  alloc(runs: number, n: number, pad = 3): Slot {
    const a = { offset: this.size + 1, runStride: n + pad, n };
    this.size = a.offset + runs * a.runStride;
    return a;
  }
}

/** Fills run r of `slot` in `data` with `values(r)`; everything else stays as `data` was. */
export function place(
  data: Float64Array,
  runs: number,
  slot: Slot,
  values: (r: number) => ArrayLike<number>,
): void {
  for (let r = 0; r < runs; r++) data.set(values(r), slot.offset + r * slot.runStride);
}

/** Run r's elements of `slot` in `data`. */
export function take<T extends Float32Array | Float64Array>(data: T, slot: Slot, r: number): T {
  const start = slot.offset + r * slot.runStride;
  return data.subarray(start, start + slot.n) as T;
}

/** Throws unless every element of `data` outside `slots` is still NaN (nothing written out of range). */
export function assertUntouched(
  data: ArrayLike<number>,
  runs: number,
  slots: Slot[],
  what: string,
): void {
  const written = new Uint8Array(data.length);
  for (const s of slots) {
    for (let r = 0; r < runs; r++) {
      written.fill(1, s.offset + r * s.runStride, s.offset + r * s.runStride + s.n);
    }
  }
  for (let i = 0; i < data.length; i++) {
    if (!written[i] && !Number.isNaN(data[i])) {
      throw new Error(`${what}: element ${i} written (${data[i]})`);
    }
  }
}

/** The view of `slot` in `buffer`. */
export function viewOf(buffer: GPUBuffer, slot: Slot): TensorView {
  return { buffer, offset: slot.offset, runStride: slot.runStride };
}
