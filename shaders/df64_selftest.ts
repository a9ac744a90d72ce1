/**
 * The adapter's df64 self-test: TwoSum, TwoProduct and the double-float operations of
 * `shaders/df64.ts` on a few thousand seeded random inputs, against float64 on the CPU. A
 * shader compiler that reassociates floating-point arithmetic, or hardware that does not round
 * + and * correctly, breaks the error-free transformations silently; this finds it before a
 * run, so `--precision df64` can stop with one line naming the primitive and the adapter.
 * Also the checking code the df64 tests share: {@link applyDf64Op}, {@link df64Errors}.
 *
 * @module
 */

import { createRng, type Rng } from "../core/prng.ts";
import { type Df64Options, joinDf64, splitDf64Array } from "./df64.ts";
import { type Df64Op, df64OpKernel } from "./df64_op.ts";
import { type Gpu, poison, readFloats, runDispatches, storageBuffer, uploadBuffer } from "./gpu.ts";

/** The relative error df64 add, sub, mul, div, sqrt, exp and log must stay within. */
export const DF64_RTOL = 1e-13;

/** Applies `op` to interleaved (hi, lo) pairs `a`, `b` on the GPU; returns the output pairs. */
export async function applyDf64Op(
  gpu: Gpu,
  op: Df64Op,
  a: Float32Array,
  b: Float32Array,
  options?: Df64Options,
): Promise<Float32Array> {
  const count = a.length / 2;
  if (!Number.isInteger(count) || b.length !== a.length) {
    throw new Error(`df64 ${op}: ${a.length} and ${b.length} floats are not equal counts of pairs`);
  }
  const aBuf = uploadBuffer(gpu, a, `df64 ${op} a`), bBuf = uploadBuffer(gpu, b, `df64 ${op} b`);
  const outBuf = storageBuffer(gpu, a.length, `df64 ${op} out`);
  try {
    poison(gpu, outBuf); // an output the kernel does not write reads back as NaN and fails
    const whole = (buffer: GPUBuffer) => ({ buffer, offset: 0, runStride: a.length });
    runDispatches(gpu, [
      df64OpKernel(gpu, {
        op,
        runs: 1,
        count,
        a: whole(aBuf),
        b: whole(bBuf),
        out: whole(outBuf),
        options,
      }),
    ]);
    return await readFloats(gpu, outBuf, a.length);
  } finally {
    aBuf.destroy();
    bBuf.destroy();
    outBuf.destroy();
  }
}

/** The float64 reference of each op, on the float64 values of the input pairs. */
export const DF64_REFERENCE: Record<Df64Op, (x: number, y: number) => number> = {
  two_sum: (x, y) => x + y,
  quick_two_sum: (x, y) => x + y,
  two_prod: (x, y) => x * y,
  add: (x, y) => x + y,
  sub: (x, y) => x - y,
  mul: (x, y) => x * y,
  mul_f: (x, y) => x * y,
  div: (x, y) => x / y,
  sqrt: (x) => Math.sqrt(x),
  exp: (x) => Math.exp(x),
  log: (x) => Math.log(x),
};

/** The ops whose inputs are float32 (the hi of each pair) and whose result must be exact. */
const EXACT_OPS: ReadonlySet<Df64Op> = new Set(["two_sum", "quick_two_sum", "two_prod"]);

/** Where an op was worst over its inputs. */
export interface Df64Worst {
  /** Largest relative error |got - want| / |want| (Infinity for NaN, or a non-zero for 0). */
  error: number;
  index: number;
  /** The input values (float64 joins of the pairs) and the result there. */
  x: number;
  y: number;
  got: number;
  want: number;
}

/**
 * Relative errors of `op`'s output pairs against {@link DF64_REFERENCE} on the inputs' float64
 * values. For TwoSum and TwoProduct (exact ops) the hi must also be the float32 rounding of
 * the result, else the error is Infinity. `atol` (default 0) is an absolute error allowed on
 * top, for results below float32's normal range.
 */
export function df64Errors(
  op: Df64Op,
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  atol = 0,
): { errors: Float64Array; worst: Df64Worst } {
  const exact = EXACT_OPS.has(op);
  const n = a.length / 2;
  const errors = new Float64Array(n);
  let worst: Df64Worst = { error: -1, index: -1, x: NaN, y: NaN, got: NaN, want: NaN };
  for (let i = 0; i < n; i++) {
    const x = exact ? a[2 * i] : joinDf64(a[2 * i], a[2 * i + 1]);
    const y = exact || op === "mul_f" ? b[2 * i] : joinDf64(b[2 * i], b[2 * i + 1]);
    const want = DF64_REFERENCE[op](x, y);
    const got = joinDf64(out[2 * i], out[2 * i + 1]);
    const diff = Math.abs(got - want);
    let error = diff <= atol ? 0 : want === 0 ? Infinity : (diff - atol) / Math.abs(want);
    if (Number.isNaN(error) || (exact && out[2 * i] !== Math.fround(want))) error = Infinity;
    errors[i] = error;
    if (error > worst.error) worst = { error, index: i, x, y, got, want };
  }
  return { errors, worst };
}

/**
 * Whether the adapter keeps float32 subnormals (WGSL lets it flush them to zero): TwoProduct of
 * 2^-126 and 0.5 gives 2^-127, or 0.
 */
export async function keepsSubnormals(gpu: Gpu): Promise<boolean> {
  const a = splitDf64Array([2 ** -126]), b = splitDf64Array([0.5]);
  return (await applyDf64Op(gpu, "two_prod", a, b))[0] !== 0;
}

/** A float64 uniform in ±[2^lo, 2^hi), log-uniform in magnitude, with a random sign. */
export function randomMagnitude(rng: Rng, lo: number, hi: number): number {
  const sign = rng.next() < 0.5 ? -1 : 1;
  // Two draws fill all 52 fraction bits, so the lo of the pair is a full float32 too.
  const fraction = (rng.nextU32() * 2 ** 20 + (rng.nextU32() >>> 12)) * 2 ** -52;
  return sign * (1 + fraction) * 2 ** Math.floor(rng.uniform(lo, hi));
}

/** `n` values by `gen` as interleaved df64 pairs (float32 ops: the float32 rounding, lo 0). */
export function randomPairs(n: number, gen: () => number, float32 = false): Float32Array {
  const xs = Float64Array.from({ length: n }, () => (float32 ? Math.fround(gen()) : gen()));
  return splitDf64Array(xs);
}

/** One primitive of the self-test: its inputs (float64 magnitudes as powers of two). */
interface SelfTestCase {
  op: Df64Op;
  /** log2 ranges of |a| and |b|. */
  a: [number, number];
  b: [number, number];
  /** Whether a must be >= 0 (sqrt). */
  positive?: boolean;
}

/**
 * What the self-test runs, in order (the first failure is reported). Exponent ranges stay
 * where float64 is exact for TwoSum (|a|/|b| < 2^28) and results stay inside df64's range on
 * every adapter, including those that flush subnormals (magnitudes >= 2^-76, `df64.ts`).
 */
const SELF_TEST: readonly SelfTestCase[] = [
  { op: "two_sum", a: [-14, 14], b: [-14, 14] },
  { op: "two_prod", a: [-40, 40], b: [-40, 40] },
  { op: "add", a: [-30, 30], b: [-30, 30] },
  { op: "mul", a: [-40, 40], b: [-40, 40] },
  { op: "div", a: [-40, 40], b: [-40, 40] },
  { op: "sqrt", a: [-70, 120], b: [0, 1], positive: true },
  { op: "exp", a: [-6, 6], b: [0, 1] },
  { op: "log", a: [-60, 60], b: [0, 1], positive: true },
];

/** The self-test's verdict: ok, or the first primitive that failed and where. */
export type Df64SelfTestResult =
  | { ok: true; worst: Partial<Record<Df64Op, number>> }
  | { ok: false; primitive: Df64Op; worst: Df64Worst; limit: number };

/** Options of {@link df64SelfTest}; tests pass `options` to check that a broken build fails. */
export interface Df64SelfTestOptions {
  /** Inputs per primitive (default 4096). */
  count?: number;
  seed?: number;
  options?: Df64Options;
}

/**
 * Runs each primitive on `count` seeded random inputs and checks it against float64: exact for
 * TwoSum and TwoProduct, within {@link DF64_RTOL} for the others. Stops at the first failure.
 */
export async function df64SelfTest(
  gpu: Gpu,
  opts: Df64SelfTestOptions = {},
): Promise<Df64SelfTestResult> {
  const count = opts.count ?? 4096;
  const rng = createRng(opts.seed ?? 0x64f64);
  const worst: Partial<Record<Df64Op, number>> = {};
  for (const c of SELF_TEST) {
    const exact = EXACT_OPS.has(c.op);
    const sign = (x: number) => (c.positive ? Math.abs(x) : x);
    const a = randomPairs(count, () => sign(randomMagnitude(rng, ...c.a)), exact);
    const b = randomPairs(count, () => randomMagnitude(rng, ...c.b), exact);
    const out = await applyDf64Op(gpu, c.op, a, b, opts.options);
    const found = df64Errors(c.op, a, b, out).worst;
    const limit = exact ? 0 : DF64_RTOL;
    if (!(found.error <= limit)) return { ok: false, primitive: c.op, worst: found, limit };
    worst[c.op] = found.error;
  }
  return { ok: true, worst };
}

/** The one line a failed self-test stops the trainer with (empty when it passed). */
export function df64SelfTestMessage(adapter: string, result: Df64SelfTestResult): string {
  if (result.ok) return "";
  const w = result.worst;
  const inputs = ["sqrt", "exp", "log"].includes(result.primitive) ? `${w.x}` : `${w.x}, ${w.y}`;
  return `df64 self-test failed on ${adapter}: ${result.primitive} relative error ${w.error} ` +
    `(limit ${result.limit}) at (${inputs}): got ${w.got}, expected ${w.want}`;
}
