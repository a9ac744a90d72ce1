/**
 * The one way GPU tests register: {@link gpuTest} runs `fn` with the process's GPU; and
 * {@link randomReals}, inputs exact in a kernel's precision. The
 * sanitizers are off because the GPU (device, pipeline cache, pending maps) deliberately
 * outlives every test.
 *
 * @module
 */

import type { Rng } from "../core/prng.ts";
import { stacked } from "../core/test_util.ts";
import { acquireGpu, type Gpu } from "./gpu.ts";
import { decodeReals, encodeReals, type Precision } from "./precision.ts";

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

/**
 * `n` fresh uniform values in [lo, hi), each rounded to what `precision` holds exactly (float32,
 * a df64 (hi, lo) pair, float64), so a float64 reference sees the very inputs the GPU does.
 */
export function randomReals(
  rng: Rng,
  precision: Precision,
  n: number,
  lo = -1,
  hi = 1,
): Float64Array {
  // Two draws: 53 random bits, so a df64 value's lo part is random too.
  const values = Float64Array.from(
    { length: n },
    () => lo + (hi - lo) * (rng.next() + rng.next() * 2 ** -32),
  );
  return Float64Array.from(decodeReals(precision, encodeReals(precision, values).buffer));
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
