/**
 * Helpers shared by the tests: fresh random inputs, run-stacked slices, a tolerance check in
 * which NaN always fails, and an expected-error check.
 *
 * @module
 */

import { createRng, type Rng } from "./prng.ts";

/**
 * A generator seeded from the clock, so every test run sees fresh inputs; the seed is logged, and
 * `WD_TEST_SEED=<seed>` replays a failing one.
 */
export function freshRng(label: string): Rng {
  const fixed = Deno.env.get("WD_TEST_SEED");
  const seed = fixed ? Number(fixed) >>> 0 : (Date.now() ^ (performance.now() * 1000)) >>> 0;
  console.error(`${label}: seed ${seed}`);
  return createRng(seed);
}

/** `n` uniform values in [lo, hi), as float32. */
export function randomFloats(rng: Rng, n: number, lo = -1, hi = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.uniform(lo, hi));
}

/**
 * Throws unless every |actual - expected| <= atol + rtol * |expected|. NaN or infinity in
 * `actual` fails, whatever `expected` says.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  atol: number,
  what: string,
): void {
  if (actual.length < expected.length) {
    throw new Error(`${what}: got ${actual.length} values, expected ${expected.length}`);
  }
  let worst = -1, worstErr = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    if (!Number.isFinite(a)) throw new Error(`${what}[${i}] = ${a}, expected ${e}`);
    const err = Math.abs(a - e) / (atol + rtol * Math.abs(e));
    if (err > worstErr) (worstErr = err), (worst = i);
  }
  if (worstErr > 1) {
    throw new Error(
      `${what}[${worst}] = ${actual[worst]}, expected ${expected[worst]} ` +
        `(rtol ${rtol}, atol ${atol})`,
    );
  }
}

/**
 * A run-stacked array: `runs` blocks from `block()` (each `size` long), `stride` apart from
 * `offset`, with NaN everywhere else, so a kernel's stray read or write shows up.
 */
export function stacked<T extends Float32Array | Float64Array>(
  make: (length: number) => T,
  block: () => ArrayLike<number>,
  runs: number,
  stride: number,
  offset: number,
): T {
  const a = make(offset + runs * stride).fill(NaN) as T;
  for (let r = 0; r < runs; r++) a.set(block(), offset + r * stride);
  return a;
}

/** {@link stacked} blocks of `size` random float32 values in [lo, hi). */
export function stackedFloats(
  rng: Rng,
  runs: number,
  size: number,
  stride: number,
  offset: number,
  lo = -1,
  hi = 1,
): Float32Array {
  const make = (n: number) => new Float32Array(n);
  return stacked(make, () => randomFloats(rng, size, lo, hi), runs, stride, offset);
}

/** Element `i` of run `r` of a run-stacked array. */
export function runSlice(
  a: Float32Array,
  run: number,
  runStride: number,
  length: number,
): Float32Array {
  return a.subarray(run * runStride, run * runStride + length);
}

/** Throws unless `fn` throws an Error whose message contains `fragment`. */
export function assertThrows(fn: () => unknown, fragment: string): void {
  try {
    fn();
  } catch (e) {
    if (!(e as Error).message.includes(fragment)) {
      throw new Error(`expected an error with "${fragment}", got "${(e as Error).message}"`);
    }
    return;
  }
  throw new Error(`expected an error with "${fragment}"`);
}
