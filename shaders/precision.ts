/**
 * The arithmetic a kernel computes in (`R`), chosen once per trainer with `--precision`.
 *
 * Decisions, each with its reason:
 * - Every kernel template is written once, against the real type `R` and the `r_*` functions
 *   below, and {@link KernelInterface} pastes the matching definitions: the float32, df64 and
 *   float64 variants of a kernel then cannot drift apart.
 * - "f32": `R = f32` and the `r_*` are the plain operators: the compiler inlines them, so the
 *   float32 kernels pay nothing for the abstraction.
 * - "df64": `R = vec2<f32>`, a (hi, lo) pair of float32 (`df64.ts`, ~48-bit mantissa), buffers
 *   of interleaved pairs (8 bytes an element): it runs on any adapter, and keeps runs A and B
 *   equal to ~1e-13 where float32 cannot.
 * - "f64": `R = f64`, native doubles, only where the adapter has `shader-f64`: exact float64
 *   where the hardware has it; the startup self-test is the evidence that it works.
 * - Host arrays are float32 for f32 and float64 for the two others ({@link Reals}): a df64 pair
 *   is split and joined at the buffer boundary, so callers see one number per element.
 *
 * The measured cost of each precision is in docs/results/kernel-variants.md.
 *
 * The WGSL vocabulary (a, b, c: R; x: f32):
 * - `R()` is zero in every precision; `r_f(x)` is the float32 x as an R (never `R(x)`: in df64
 *   that would be the pair (x, x)); a float64 constant is `realLiteral(precision, x)`;
 * - `r_add(a, b)`, `r_sub`, `r_mul`, `r_div`, `r_fma(a, b, c)` = a·b + c (not fused),
 *   `r_sqrt(a)`, `r_exp(a)`, `r_log(a)`, `r_abs(a)`, `r_max(a, b)`, unary `-a`;
 * - `r_gt(a, b)`, `r_lt(a, b)`: exact comparisons; `r_hi(a)`: the nearest float32 (for signs,
 *   thresholds, and outputs that stay float32);
 * - `select(a, b, cond)` works on R as on f32.
 *
 * @module
 */

import { df64Wgsl, joinDf64Array, splitDf64, splitDf64Array } from "./df64.ts";
import type { Rng } from "../core/prng.ts";

/** The kernels' arithmetic: float32, double-float pairs, or native float64. */
export type Precision = "f32" | "df64" | "f64";

/** Every {@link Precision}, in the order the CLI lists them. */
export const PRECISIONS: readonly Precision[] = ["f32", "df64", "f64"];

/** Host arrays of reals: float32 for "f32", float64 for the two others. */
export type Reals = Float32Array | Float64Array;

/** Bytes per element of an `R` buffer. */
export function realBytes(precision: Precision): number {
  return precision === "f32" ? 4 : 8;
}

/** The uniform u32 field that carries df64's runtime zero (see df64.ts's guard). */
export const DF64_ZERO_FIELD = "df_zero";

/** Definitions of `R` and the `r_*` functions; df64's read `u.df_zero` (declared by the interface). */
export function realWgsl(precision: Precision): string {
  if (precision === "df64") {
    return /* wgsl */ `alias R = vec2<f32>;
${df64Wgsl({ zero: `u.${DF64_ZERO_FIELD}` })}
fn r_f(x: f32) -> R { return vec2<f32>(x, 0.0); }
fn r_hi(a: R) -> f32 { return a.x; }
fn r_add(a: R, b: R) -> R { return df_add(a, b); }
fn r_sub(a: R, b: R) -> R { return df_sub(a, b); }
fn r_mul(a: R, b: R) -> R { return df_mul(a, b); }
fn r_div(a: R, b: R) -> R { return df_div(a, b); }
fn r_fma(a: R, b: R, c: R) -> R { return df_add(df_mul(a, b), c); }
fn r_sqrt(a: R) -> R { return df_sqrt(a); }
fn r_exp(a: R) -> R { return df_exp(a); }
fn r_log(a: R) -> R { return df_log(a); }
fn r_gt(a: R, b: R) -> bool { return a.x > b.x || (a.x == b.x && a.y > b.y); }
fn r_lt(a: R, b: R) -> bool { return r_gt(b, a); }
fn r_abs(a: R) -> R { return select(a, -a, a.x < 0.0); }
fn r_max(a: R, b: R) -> R { return select(a, b, r_gt(b, a)); }
`;
  }
  const t = precision;
  return /* wgsl */ `alias R = ${t};
fn r_f(x: f32) -> R { return ${t}(x); }
fn r_hi(a: R) -> f32 { return f32(a); }
fn r_add(a: R, b: R) -> R { return a + b; }
fn r_sub(a: R, b: R) -> R { return a - b; }
fn r_mul(a: R, b: R) -> R { return a * b; }
fn r_div(a: R, b: R) -> R { return a / b; }
fn r_fma(a: R, b: R, c: R) -> R { return a * b + c; }
fn r_sqrt(a: R) -> R { return sqrt(a); }
fn r_exp(a: R) -> R { return exp(a); }
fn r_log(a: R) -> R { return log(a); }
fn r_gt(a: R, b: R) -> bool { return a > b; }
fn r_lt(a: R, b: R) -> bool { return a < b; }
fn r_abs(a: R) -> R { return abs(a); }
fn r_max(a: R, b: R) -> R { return max(a, b); }
`;
}

/**
 * A float64 constant as a WGSL `R` expression to the precision's full accuracy (df64: its
 * (hi, lo) pair; f32: rounded once, by the compiler).
 */
export function realLiteral(precision: Precision, x: number): string {
  const lit = (c: number) => c.toPrecision(17);
  if (precision !== "df64") return `R(${lit(x)})`;
  const [hi, lo] = splitDf64(x);
  return `R(${lit(hi)}, ${lit(lo)})`;
}

/**
 * `values` as the bytes of an `R` buffer (df64: each float64 split into its (hi, lo) pair),
 * written into `out` when given (its length: `values.length` reals). Without `out`, a
 * Float32Array given for f32 is returned as it is, without a copy (the per-step batch upload).
 */
export function encodeReals(
  precision: Precision,
  values: ArrayLike<number>,
  out?: Float32Array<ArrayBuffer> | Float64Array<ArrayBuffer>,
): Float32Array<ArrayBuffer> | Float64Array<ArrayBuffer> {
  if (precision === "df64") return splitDf64Array(values, out as Float32Array<ArrayBuffer>);
  if (out) {
    out.set(values);
    return out;
  }
  // The project never allocates SharedArrayBuffers: the cast only narrows ArrayBufferLike.
  if (precision === "f32" && values instanceof Float32Array) {
    return values as Float32Array<ArrayBuffer>;
  }
  return precision === "f32" ? Float32Array.from(values) : Float64Array.from(values);
}

/** A host array that {@link encodeReals} fills with `n` reals of `precision`. */
export function realsBytes(
  precision: Precision,
  n: number,
): Float32Array<ArrayBuffer> | Float64Array<ArrayBuffer> {
  return precision === "f64"
    ? new Float64Array(n)
    : new Float32Array(precision === "df64" ? 2 * n : n);
}

/** The values of an `R` buffer's bytes (df64: each pair joined into one float64). */
export function decodeReals(precision: Precision, bytes: ArrayBuffer): Reals {
  if (precision === "df64") return joinDf64Array(new Float32Array(bytes));
  return precision === "f32" ? new Float32Array(bytes) : new Float64Array(bytes);
}

/**
 * A buffer's reals without loss: the values ({@link decodeReals}) and, for df64, each pair's lo.
 * A df64 pair can carry bits 48 places apart, past float64's 53, so its float64 value alone
 * does not give the pair back; value and lo together do ({@link encodeRealsExact}).
 */
export function decodeRealsExact(
  precision: Precision,
  bytes: ArrayBuffer,
): { values: Reals; lo?: Float32Array } {
  const values = decodeReals(precision, bytes);
  if (precision !== "df64") return { values };
  const pairs = new Float32Array(bytes);
  return { values, lo: Float32Array.from({ length: values.length }, (_, i) => pairs[2 * i + 1]) };
}

/**
 * The bytes of an `R` buffer from {@link decodeRealsExact}'s values and lo: hi is the float32
 * rounding of value − lo (within an ulp of float64 of hi, so it rounds to hi exactly).
 */
export function encodeRealsExact(
  precision: Precision,
  values: ArrayLike<number>,
  lo?: ArrayLike<number>,
): Float32Array<ArrayBuffer> | Float64Array<ArrayBuffer> {
  if (precision !== "df64" || lo === undefined) return encodeReals(precision, values);
  const pairs = new Float32Array(2 * values.length);
  for (let i = 0; i < values.length; i++) {
    pairs[2 * i] = Math.fround(values[i] - lo[i]);
    pairs[2 * i + 1] = lo[i];
  }
  return pairs;
}

/**
 * One rounding in each precision, the unit of the tests' error bounds: float32's 2^-24, float64's
 * 2^-53; df64's operations stay within ~2^-47 relative (df64.ts: worst measured 6.7e-15 ≈
 * 2^-47.1), so 2^-46 bounds them with margin.
 */
export const ROUNDING: Record<Precision, number> = { f32: 2 ** -24, df64: 2 ** -46, f64: 2 ** -53 };

/**
 * The absolute error allowed in per-channel sums of `term(k)` over `length` channels-last
 * elements (k's channel is k mod `channels`; dgamma = Σ dy·xhat, dbeta = Σ dy): `depth`
 * roundings (default 128, above any kernel's reduction depth) of the largest channel's Σ|term|,
 * which random signs make far larger than the sum itself.
 */
export function channelSumsAtol(
  precision: Precision,
  length: number,
  channels: number,
  term: (k: number) => number,
  depth = 128,
): number {
  const col = new Float64Array(channels);
  for (let k = 0; k < length; k++) col[k % channels] += Math.abs(term(k));
  return depth * ROUNDING[precision] * col.reduce((m, v) => Math.max(m, v), 0) + 1e-30;
}

/** A zeroed host array of `n` reals of the precision's host type. */
export function newReals(precision: Precision, n: number): Reals {
  return precision === "f32" ? new Float32Array(n) : new Float64Array(n);
}

/** `values` as a buffer of `precision` holds them (float32: rounded; df64: the joined pairs). */
export function heldReals(precision: Precision, values: ArrayLike<number>): Float64Array {
  return Float64Array.from(decodeReals(precision, encodeReals(precision, values).buffer));
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
  return heldReals(precision, values);
}
