/**
 * Double-float ("df64") arithmetic in WGSL: a value is the unevaluated sum hi + lo of two
 * float32 (`vec2<f32>`, x = hi, y = lo, |lo| <= ulp(hi)/2), about 48 bits of mantissa.
 * {@link df64Wgsl} is the library a kernel pastes in; the CPU side splits float64 values into
 * pairs ({@link splitDf64}) and joins them back ({@link joinDf64}). Kernels use it through
 * `precision.ts`; `df64_op.ts` applies one primitive elementwise (tests, the adapter self-test).
 *
 * Kernel contract: declare {@link DF64_ONE_FIELD} among the interface's `floats`, pass
 * {@link DF64_ONE} in the dispatch, and call `df_init(u.df_one)` first in `main`; buffers hold
 * interleaved (hi, lo) float32 pairs.
 *
 * Compiler-proofing, measured on lavapipe (llvmpipe, LLVM 15.0.6, Mesa 22.3.6, AVX2) through
 * Deno 2.9.6's WebGPU, 65,536 random float32 pairs unless said otherwise:
 * - WGSL lets the compiler reassociate floating-point arithmetic, and Mesa's NIR does (its
 *   inexact rules -a + (a + b) -> b, a·b + a·c -> a·(b + c), ...). Knuth's TwoSum as written
 *   gives a zero error term: 58,878 pairs inexact.
 * - Multiplying the rounded sum by a runtime 1.0 (the guard measured when issue 11 was filed)
 *   makes TwoSum exact on loaded operands, but not inside larger code: when an operand is
 *   itself a product (two_sum(x * 2.0, y): 4,079 of 4,096 inexact) or when two guarded terms are
 *   added (1.0 becomes a common factor NIR factors out), the rewrite is back. df_exp built on
 *   that guard was off by 7e-8 relative on 4,095 of 4,096 inputs.
 * - Kept guard: `df_keep(x)` XORs the bits of x with a runtime 0u (derived from the uniform 1.0
 *   in df_init). An integer operation between bitcasts is opaque to every floating-point rule:
 *   every variant above is exact with it, and it is no slower than the product. It wraps each
 *   rounded value whose error an algorithm recovers: the sum of TwoSum and quick TwoSum (and
 *   their differences s - a, s - bb), the split's 4097·x and t - x, TwoProduct's partial
 *   products. Dropping the defensive ones (all but the sums) saved no measurable time.
 * - TwoProduct: Dekker's split (4097·x) is exact, even with no guard at all here. WGSL's `fma`
 *   is not fused on lavapipe although the host has FMA3: fma(a, b, -p) with p = fl(a·b) loaded
 *   from a buffer returns 0 for every input (and a·b - p is not contracted either), so an
 *   fma TwoProduct is wrong on every input. Dekker is the default; `twoProd: "fma"` stays for
 *   adapters whose fma is fused (the self-test, `df64_selftest.ts`, tells).
 * - Subnormals are kept (2^-126 · 0.5 = 2^-127, 3 · 2^-149 stays), which sets the low end of
 *   the range below.
 *
 * Valid range (relative error <= 1e-13, measured ~1e-14): finite inputs and results with
 * magnitudes in [2^L, ~1e38] (sums below float32's 3.4e38; TwoProduct scales operands past
 * 2^96 so 4097·x does not overflow), L from {@link df64LowestExponent}: -100 ≈ 7.9e-31 where
 * the adapter keeps float32 subnormals (lavapipe), below which the lo part runs into them and
 * the error becomes absolute, ~2^-149; -76 where it flushes them to zero, as WGSL allows
 * (SwiftShader): TwoProduct's partial products of a 2^-77 result reach 2^-126. exp: full
 * accuracy for arguments in [L ln 2, 88.72] ([-69, 88.72] with subnormals), +inf above
 * 88.72283, 0 below -103.9. Division by zero gives NaN, not inf. A zero result may be +0 where float64
 * gives -0.
 *
 * Accuracy (`df64_test.ts`: 4,096 fresh random inputs per range plus edge cases, worst relative
 * error against float64): add/sub 6.7e-15, mul 1.3e-14, mul_f 7.4e-15, div 7.6e-15,
 * sqrt 8.7e-15, exp 5.4e-15; TwoSum and TwoProduct exact.
 *
 * Cost (`bench/df64.ts`, 2 busy cores, two runs of 3 interleaved rounds): one
 * df_add(df_mul(x, m), c) per step 1.7–2.7 ns against 0.19–0.21 ns for the float32 x·m + c
 * (16 independent chains per invocation): 8.5–14x, 9.8–10.6x in the steadier run. One step
 * per element loaded and stored (pairs are 8 bytes; the shape of SGD or BatchNorm's apply):
 * 1.4–3.0x, 2.5–3.0x in the steadier run. The XOR guard is no slower than the product by 1.0
 * (1.9–2.1 ns against 2.1–2.3). The float32 matmul reaches ~0.1 ns per multiply-add; the df64
 * one measured 7–20x slower (~10x in quiet rounds, `matmul.ts`), a whole MLP training step
 * 3.3–6.4x (`deno task bench --precision`).
 *
 * @module
 */

/** Splits a float64 into float32 (hi, lo) with hi = fround(x), lo = fround(x - hi). */
export function splitDf64(x: number): [number, number] {
  const hi = Math.fround(x);
  // x - hi is exact in float64; an infinite hi (|x| past float32's range) gets lo 0, not NaN.
  return [hi, Number.isFinite(hi) ? Math.fround(x - hi) : 0];
}

/** The float64 value of a (hi, lo) pair: hi + lo, exact for a normalized pair. */
export function joinDf64(hi: number, lo: number): number {
  return hi + lo;
}

/** Float64 values as interleaved (hi, lo) float32 pairs (into `out`), the layout of df64 buffers. */
export function splitDf64Array(
  xs: ArrayLike<number>,
  out: Float32Array<ArrayBuffer> = new Float32Array(2 * xs.length),
): Float32Array<ArrayBuffer> {
  // splitDf64's steps inline: no pair array per element (the per-step batch upload).
  for (let i = 0; i < xs.length; i++) {
    const hi = Math.fround(xs[i]);
    out[2 * i] = hi;
    out[2 * i + 1] = Number.isFinite(hi) ? Math.fround(xs[i] - hi) : 0;
  }
  return out;
}

/** Interleaved (hi, lo) float32 pairs back to float64 values. */
export function joinDf64Array(pairs: ArrayLike<number>): Float64Array {
  const out = new Float64Array(pairs.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = joinDf64(pairs[2 * i], pairs[2 * i + 1]);
  return out;
}

/** A float32 constant as a WGSL literal that parses back to exactly `x`. */
function f32Literal(x: number): string {
  const v = Math.fround(x);
  // The shortest float64 digits of a float32 value name that value exactly, and WGSL rounds
  // the literal once, to that same float32.
  const digits = Object.is(v, -0) ? "-0" : String(v);
  return /[.e]/.test(digits) ? digits : `${digits}.0`;
}

/** A float64 constant as the WGSL `vec2<f32>` of its (hi, lo) pair. */
function dfLiteral(x: number): string {
  const [hi, lo] = splitDf64(x);
  return `vec2<f32>(${f32Literal(hi)}, ${f32Literal(lo)})`;
}

/**
 * How the library stops the shader compiler from rewriting its arithmetic (see the module doc).
 * Only tests change the default: they show what each choice does on the adapter.
 * - "xor" (default): `df_keep(x)` XORs x's bits with a runtime zero (derived from the uniform
 *   1.0), an integer operation no floating-point rule sees through;
 * - "mul": `df_keep(x)` multiplies by the runtime 1.0 (the guard measured when issue 11 was
 *   filed); the compiler still factors and fuses around the common factor;
 * - "none": `df_keep(x)` is x, the algorithms as written.
 */
export type Df64Barrier = "xor" | "mul" | "none";

/** Compile-time choices of {@link df64Wgsl}. */
export interface Df64Options {
  barrier?: Df64Barrier;
  /** TwoProduct by Dekker's split (default, exact wherever + and * round correctly) or by `fma`. */
  twoProd?: "dekker" | "fma";
  /**
   * The WGSL expression of the runtime 0u the "xor" guard uses: by default the module-scope
   * `df_zero` that `df_init` sets; kernels built on `precision.ts` read a uniform field instead,
   * so they need no init call (and the library then has no df_init).
   */
  zero?: string;
}

/** The uniform field (a KernelInterface `floats` entry) that carries the runtime 1.0. */
export const DF64_ONE_FIELD = "df_one";

/** The `floats` value of {@link DF64_ONE_FIELD} for a dispatch. */
export const DF64_ONE: Readonly<Record<string, number>> = { [DF64_ONE_FIELD]: 1 };

/** The triple-float split of ln 2 (float64 ln 2 plus its next 53 bits), for exp's reduction. */
const LN2_HI = 6.93147180559945286e-01, LN2_LO = 2.31904681384629956e-17;
const LN2_C0 = Math.fround(LN2_HI);
const LN2_C1 = Math.fround(LN2_HI - LN2_C0);
const LN2_C2 = Math.fround(LN2_HI - LN2_C0 - LN2_C1 + LN2_LO);

/** exp reduces its argument by 2^EXP_HALVINGS before the polynomial and squares back. */
const EXP_HALVINGS = 8;
/** Degree of exp's Taylor polynomial for expm1 (terms s^n / n!, n = 1..EXP_DEGREE). */
const EXP_DEGREE = 5;

/** log's atanh series runs to s^(2·LOG_TERMS + 1): s² <= 0.0295, so 0.0295^10 / 21 < 2^-55. */
const LOG_TERMS = 10;

/** n! as a float64 (exact for the small n used here). */
function factorial(n: number): number {
  let f = 1;
  for (let i = 2; i <= n; i++) f *= i;
  return f;
}

/**
 * The WGSL library. Every function guards its rounded intermediates with `df_keep`, which reads
 * the module-scope values `df_init(u.df_one)` sets from the runtime 1.0 (declare
 * {@link DF64_ONE_FIELD} in the interface's `floats`, pass {@link DF64_ONE}). Functions:
 * - `two_sum(a, b)`, `quick_two_sum(a, b)` (|a| >= |b| or a = 0): s + e = a + b exactly;
 * - `two_prod(a, b)`: p + e = a * b exactly;
 * - `df_from_f32`, `df_add`, `df_sub`, `df_mul`, `df_mul_f` (df × f32), `df_div`, `df_sqrt`,
 *   `df_exp`, `df_log` on `vec2<f32>` pairs.
 */
export function df64Wgsl(options: Df64Options = {}): string {
  const keep: Record<Df64Barrier, string> = {
    xor: `return bitcast<f32>(bitcast<u32>(x) ^ ${options.zero ?? "df_zero"});`,
    mul: "return x * df_one;",
    none: "return x;",
  };
  const twoProd = (options.twoProd ?? "dekker") === "dekker"
    ? `let sa = df_split(a);
  let sb = df_split(b);
  // Kept partial products: no factoring (x*y + x*z -> x*(y+z)) or fusing of the exact terms.
  let e = ((df_keep(sa.x * sb.x) - p) + df_keep(sa.x * sb.y) + df_keep(sa.y * sb.x)) +
    sa.y * sb.y;`
    : `let e = fma(a, b, -p);`;
  // Horner from 1/EXP_DEGREE! down to 1/1!: p = 1/n! + s·p.
  const horner = Array.from({ length: EXP_DEGREE - 1 }, (_, j) => EXP_DEGREE - 1 - j)
    .map((n) => `  p = df_add(df_mul(p, s), ${dfLiteral(1 / factorial(n))});`).join("\n");
  // Horner from 1/(2·LOG_TERMS - 1) down to 1/1: p = 1/(2j + 1) + s²·p.
  const atanh = Array.from({ length: LOG_TERMS }, (_, i) => LOG_TERMS - 1 - i)
    .map((j) => `  p = df_add(df_mul(p, s2), ${dfLiteral(1 / (2 * j + 1))});`).join("\n");
  // With `zero` the guard reads it; otherwise df_init sets module-scope constants.
  const init = options.zero !== undefined ? "" : /* wgsl */ `
/** The runtime 1.0, and 0u derived from it; set by df_init, so no compiler can fold them. */
var<private> df_one: f32;
var<private> df_zero: u32;

/** Sets the runtime constants from a uniform 1.0; every df64 kernel calls it first. */
fn df_init(one: f32) {
  df_one = one;
  df_zero = bitcast<u32>(one) ^ 0x3f800000u;
}
`;
  if (options.zero !== undefined && (options.barrier ?? "xor") !== "xor") {
    throw new Error("df64Wgsl: a given zero serves the xor barrier only");
  }
  return /* wgsl */ `${init}
/**
 * x, as a value the compiler cannot reason about, so it cannot rewrite (a + b) - a as b and
 * drop the rounding error the algorithms recover.
 */
fn df_keep(x: f32) -> f32 {
  ${keep[options.barrier ?? "xor"]}
}

/** s + e = a + b exactly (Knuth). */
fn two_sum(a: f32, b: f32) -> vec2<f32> {
  let s = df_keep(a + b);
  let bb = df_keep(s - a);
  let e = (a - df_keep(s - bb)) + (b - bb);
  return vec2<f32>(s, e);
}

/** s + e = a + b exactly when |a| >= |b| (or a = 0) (Dekker). */
fn quick_two_sum(a: f32, b: f32) -> vec2<f32> {
  let s = df_keep(a + b);
  let e = b - df_keep(s - a);
  return vec2<f32>(s, e);
}

/** a = hi + lo, 12-bit halves (Veltkamp: 4097 = 2^12 + 1); past 2^96 scaled so 4097a is finite. */
fn df_split(a: f32) -> vec2<f32> {
  let big = abs(a) > 0x1p96f;
  let x = a * select(1.0, 0x1p-28f, big);
  let t = df_keep(4097.0 * x);
  let hi = t - df_keep(t - x);
  return vec2<f32>(hi, x - hi) * select(1.0, 0x1p28f, big);
}

/** p + e = a * b exactly. */
fn two_prod(a: f32, b: f32) -> vec2<f32> {
  let p = a * b;
  ${twoProd}
  return vec2<f32>(p, e);
}

/** The pair of a float32. */
fn df_from_f32(a: f32) -> vec2<f32> {
  return vec2<f32>(a, 0.0);
}

/** a + b, relative error ~2^-47 even where the sum cancels (both error terms carried). */
fn df_add(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let s = two_sum(a.x, b.x);
  let t = two_sum(a.y, b.y);
  let u = quick_two_sum(s.x, s.y + t.x);
  return quick_two_sum(u.x, u.y + t.y);
}

/** a - b. */
fn df_sub(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  return df_add(a, -b);
}

/** a * b. */
fn df_mul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let p = two_prod(a.x, b.x);
  return quick_two_sum(p.x, p.y + (a.x * b.y + a.y * b.x));
}

/** a * b for a float32 b. */
fn df_mul_f(a: vec2<f32>, b: f32) -> vec2<f32> {
  let p = two_prod(a.x, b);
  return quick_two_sum(p.x, p.y + a.y * b);
}

/**
 * a / b: three float32 quotients, each of the remainder left by the ones before, so a float32
 * division good to a few ulps still gives a full df64 quotient.
 */
fn df_div(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let q1 = a.x / b.x;
  var r = df_sub(a, df_mul_f(b, q1));
  let q2 = r.x / b.x;
  r = df_sub(r, df_mul_f(b, q2));
  let q3 = r.x / b.x;
  return df_add(quick_two_sum(q1, q2), vec2<f32>(q3, 0.0));
}

/**
 * sqrt(a) for a >= 0 (NaN below): one Newton step from the float32 root s,
 * s + (a - s²) / (2s), with the residual a - s² exact (two_prod).
 */
fn df_sqrt(a: vec2<f32>) -> vec2<f32> {
  if (a.x == 0.0) { return vec2<f32>(0.0, 0.0); }
  let s = sqrt(a.x);
  let r = df_sub(a, two_prod(s, s));
  return quick_two_sum(s, r.x / (2.0 * s));
}

/** a * 2^k for k in [-252, 254] (two exact power-of-two products). */
fn df_ldexp(a: vec2<f32>, k: i32) -> vec2<f32> {
  let k1 = k / 2;
  let p1 = bitcast<f32>(u32(k1 + 127) << 23u);
  let p2 = bitcast<f32>(u32(k - k1 + 127) << 23u);
  return a * p1 * p2;
}

/**
 * exp(a): a = k ln2 + r with |r| <= ln2/2 (ln 2 to 72 bits, so k ln2 adds no error), then
 * expm1(r / 2^${EXP_HALVINGS}) by its Taylor polynomial to degree ${EXP_DEGREE}, squared back
 * ${EXP_HALVINGS} times as p -> 2p + p² (expm1 form: errors stay relative to the small p),
 * then (1 + p) * 2^k. +inf above 88.72 (float32 overflow), 0 below -103.9.
 */
fn df_exp(a: vec2<f32>) -> vec2<f32> {
  // +inf made at run time (a.x > 2): WGSL makes a constant expression that overflows, such as
  // bitcast<f32>(0x7f800000u), a shader-creation error (Tint refuses it; naga does not).
  if (a.x > 88.72283) { return vec2<f32>(a.x * 0x1p127f, 0.0); }
  if (a.x < -103.9) { return vec2<f32>(0.0, 0.0); }
  let k = round(a.x * ${f32Literal(1 / Math.LN2)});
  var r = df_sub(a, two_prod(k, ${f32Literal(LN2_C0)}));
  r = df_sub(r, two_prod(k, ${f32Literal(LN2_C1)}));
  r = df_sub(r, vec2<f32>(k * ${f32Literal(LN2_C2)}, 0.0));
  let s = r * ${f32Literal(2 ** -EXP_HALVINGS)};
  var p = ${dfLiteral(1 / factorial(EXP_DEGREE))};
${horner}
  p = df_mul(p, s);
  for (var i = 0; i < ${EXP_HALVINGS}; i++) {
    p = df_add(p * 2.0, df_mul(p, p));
  }
  return df_ldexp(df_add(vec2<f32>(1.0, 0.0), p), i32(k));
}

/**
 * log(a) for a > 0: a = m·2^e with m in [√½, √2) (a near 1 has e = 0: no cancellation), then
 * log m = 2 atanh(s), s = (m - 1)/(m + 1), |s| <= 0.172, by its series to s^${2 * LOG_TERMS + 1}
 * (m - 1 is exact, so the result stays relatively accurate near 1, where a Newton step on exp
 * would leave an absolute error of one ulp of 1), plus e·ln 2 (ln 2 to 72 bits).
 */
fn df_log(a: vec2<f32>) -> vec2<f32> {
  var e = i32((bitcast<u32>(a.x) >> 23u) & 0xffu) - 127;
  var m = df_ldexp(a, -e);
  if (m.x >= ${f32Literal(Math.SQRT2)}) {
    m = m * 0.5;
    e += 1;
  }
  let one = vec2<f32>(1.0, 0.0);
  let s = df_div(df_sub(m, one), df_add(m, one));
  let s2 = df_mul(s, s);
  var p = ${dfLiteral(1 / (2 * LOG_TERMS + 1))};
${atanh}
  let lm = df_mul(s, p) * 2.0;
  let k = f32(e);
  let kln2 = df_add(two_prod(k, ${f32Literal(LN2_C0)}), two_prod(k, ${f32Literal(LN2_C1)}));
  return df_add(df_add(kln2, vec2<f32>(k * ${f32Literal(LN2_C2)}, 0.0)), lm);
}
`;
}

/**
 * log2 of the smallest magnitude at which df64 keeps full accuracy: -100 on an adapter that
 * keeps float32 subnormals, -76 on one that flushes them (see the module doc).
 */
export function df64LowestExponent(keepsSubnormals: boolean): number {
  return keepsSubnormals ? -100 : -76;
}

/** The library with the default options. */
export const DF64_WGSL: string = df64Wgsl();
