import { gpuTest } from "./test_gpu.ts";
import type { Rng } from "../core/prng.ts";
import { freshRng } from "../core/test_util.ts";
import type { Gpu } from "./gpu.ts";
import {
  DF64_WGSL,
  df64LowestExponent,
  type Df64Options,
  joinDf64,
  joinDf64Array,
  splitDf64,
  splitDf64Array,
} from "./df64.ts";
import { type Df64Op, df64OpWgsl } from "./df64_op.ts";
import {
  applyDf64Op,
  DF64_RTOL,
  df64Errors,
  keepsSubnormals,
  randomMagnitude,
  randomPairs,
} from "./df64_selftest.ts";

/** Fresh random inputs per primitive and range. */
const N = 4096;

/**
 * log2 of df64's smallest full-accuracy magnitude on `gpu`: -100, or -76 on an adapter that
 * flushes subnormals (SwiftShader). The tiny ranges below are written relative to it.
 */
async function lowest(gpu: Gpu): Promise<number> {
  return df64LowestExponent(await keepsSubnormals(gpu));
}

/** One set of inputs of an op, as interleaved (hi, lo) pairs. */
interface Inputs {
  what: string;
  a: Float32Array;
  b: Float32Array;
}

/** `N` pairs (a, b) with |a| in 2^ra and |b| in 2^rb (log2 ranges), random signs. */
function ranges(rng: Rng, what: string, ra: [number, number], rb: [number, number]): Inputs {
  return {
    what,
    a: randomPairs(N, () => randomMagnitude(rng, ...ra)),
    b: randomPairs(N, () => randomMagnitude(rng, ...rb)),
  };
}

/**
 * Applies `op` to every input set on the GPU and throws unless every result is within `rtol`
 * (relative, plus `atol` absolute) of float64; logs the worst error of each set. Returns the
 * worst over all sets.
 */
async function check(
  gpu: Gpu,
  op: Df64Op,
  sets: Inputs[],
  rtol = DF64_RTOL,
  atol = 0,
): Promise<number> {
  let worstAll = 0;
  for (const { what, a, b } of sets) {
    const out = await applyDf64Op(gpu, op, a, b);
    const { worst } = df64Errors(op, a, b, out, atol);
    console.error(`df64 ${op} ${what}: worst relative error ${worst.error.toExponential(2)}`);
    if (!(worst.error <= rtol)) {
      throw new Error(
        `df64 ${op} ${what}[${worst.index}]: (${worst.x}, ${worst.y}) gave ${worst.got}, ` +
          `expected ${worst.want} (relative error ${worst.error}, limit ${rtol})`,
      );
    }
    worstAll = Math.max(worstAll, worst.error);
  }
  return worstAll;
}

/** The pairs of explicit float64 values (both operands of an edge case). */
function cases(what: string, pairs: [number, number][]): Inputs {
  return {
    what,
    a: splitDf64Array(pairs.map(([x]) => x)),
    b: splitDf64Array(pairs.map(([, y]) => y)),
  };
}

/** `N` pairs where b = -a + a·2^-k·u (k in [1, 44]): a + b cancels up to 44 bits. */
function cancelling(rng: Rng, lo: number, hi: number): Inputs {
  const xs = Array.from({ length: N }, () => randomMagnitude(rng, lo, hi));
  const ys = xs.map((x) => -x + x * 2 ** -(1 + rng.int(44)) * rng.uniform(-1, 1));
  return { what: `cancelling 2^[${lo}, ${hi})`, a: splitDf64Array(xs), b: splitDf64Array(ys) };
}

Deno.test("splitDf64/joinDf64: hi is the float32 rounding, hi + lo carries 48 bits", () => {
  const rng = freshRng("df64 split");
  for (let i = 0; i < 10000; i++) {
    const x = randomMagnitude(rng, -100, 126);
    const [hi, lo] = splitDf64(x);
    if (hi !== Math.fround(x) || lo !== Math.fround(x - hi)) throw new Error(`split ${x}`);
    if (Math.abs(joinDf64(hi, lo) - x) > Math.abs(x) * 2 ** -48) throw new Error(`join ${x}`);
  }
  // Past float32's range hi is infinite and lo 0 (not NaN); zeros keep their sign in hi.
  if (splitDf64(1e39).join() !== "Infinity,0") throw new Error(`${splitDf64(1e39)}`);
  if (!Object.is(splitDf64(-0)[0], -0)) throw new Error("-0");
  const back = joinDf64Array(splitDf64Array([Math.PI, -Math.E, 0]));
  if (Math.abs(back[0] - Math.PI) > 1e-14 || Math.abs(back[1] + Math.E) > 1e-14 || back[2]) {
    throw new Error(`arrays: ${back}`);
  }
});

gpuTest("df64 two_sum and quick_two_sum are error-free on fresh random float32", async (gpu) => {
  const rng = freshRng("df64 two_sum");
  // |a| / |b| < 2^28, so a + b is exact in float64 and the check is exact.
  const f32 = () => randomPairs(N, () => randomMagnitude(rng, -14, 14), true);
  const sets = [{ what: "2^[-14, 14)", a: f32(), b: f32() }];
  await check(gpu, "two_sum", sets, 0);
  for (const { a, b } of sets) {
    for (let i = 0; i < a.length; i += 2) {
      if (Math.abs(a[i]) < Math.abs(b[i])) [a[i], b[i]] = [b[i], a[i]]; // quick: |a| >= |b|
    }
  }
  await check(gpu, "quick_two_sum", sets, 0);
});

gpuTest("df64 two_prod is error-free, also past 2^96 (the scaled split)", async (gpu) => {
  const rng = freshRng("df64 two_prod");
  const f32 = (lo: number, hi: number) => randomPairs(N, () => randomMagnitude(rng, lo, hi), true);
  // Products stay >= 2^low, so the error term is a float32 (not below the subnormals).
  const half = Math.ceil((await lowest(gpu)) / 2);
  await check(gpu, "two_prod", [
    { what: `2^[${half}, 60)`, a: f32(half, 60), b: f32(half, 60) },
    { what: "2^[96, 120) x 2^[-30, 6)", a: f32(96, 120), b: f32(-30, 6) },
  ], 0);
});

gpuTest(
  "df64 add and sub: 1e-13 of float64 over ranges, huge, tiny and cancelling",
  async (gpu) => {
    const rng = freshRng("df64 add");
    const low = await lowest(gpu);
    const sets = () => [
      ranges(rng, "2^[-60, 60)", [-60, 60], [-60, 60]),
      ranges(rng, "2^[-10, 10)", [-10, 10], [-10, 10]),
      ranges(rng, "huge 2^[120, 126)", [120, 126], [120, 126]),
      ranges(rng, `tiny 2^[${low}, ${low + 10})`, [low, low + 10], [low, low + 10]),
      cancelling(rng, -20, 20),
      cancelling(rng, 110, 126),
    ];
    await check(gpu, "add", sets());
    await check(gpu, "sub", sets().map((s) => ({ ...s, b: s.b.map((v) => -v) })));
  },
);

gpuTest("df64 mul and mul_f: 1e-13 of float64, huge and tiny products", async (gpu) => {
  const rng = freshRng("df64 mul");
  const low = await lowest(gpu), half = Math.ceil(low / 2);
  await check(gpu, "mul", [
    ranges(rng, `2^[${half}, 50)`, [half, 50], [half, 50]),
    ranges(rng, "huge 2^[60, 63)²", [60, 63], [60, 63]),
    ranges(rng, "huge 2^[100, 126) x 2^[-20, 0)", [100, 126], [-20, 0]),
    ranges(rng, `tiny 2^[${half}, ${half + 2})²`, [half, half + 2], [half, half + 2]),
    ranges(rng, `tiny 2^[${low}, ${low + 10}) x 2^[0, 5)`, [low, low + 10], [0, 5]),
  ]);
  const f32 = (s: Inputs): Inputs => ({ ...s, b: s.b.map((v, i) => (i % 2 ? 0 : v)) });
  await check(gpu, "mul_f", [
    f32(ranges(rng, `2^[${half}, 50)`, [half, 50], [half, 50])),
    f32(ranges(rng, "huge 2^[100, 126) x 2^[-20, 0)", [100, 126], [-20, 0])),
  ]);
});

gpuTest("df64 div: 1e-13 of float64, huge and tiny quotients", async (gpu) => {
  const rng = freshRng("df64 div");
  const low = await lowest(gpu), half = Math.ceil(low / 2);
  await check(gpu, "div", [
    ranges(rng, `2^[${half}, ${-half})`, [half, -half], [half, -half]),
    ranges(rng, "2^[-3, 3)", [-3, 3], [-3, 3]),
    ranges(rng, "huge 2^[120, 126) / 2^[0, 4)", [120, 126], [0, 4]),
    ranges(rng, `tiny 2^[${low + 4}, ${low + 10}) / 2^[0, 4)`, [low + 4, low + 10], [0, 4]),
  ]);
});

gpuTest("df64 sqrt: 1e-13 of float64 over 2^[low, 126)", async (gpu) => {
  const rng = freshRng("df64 sqrt");
  const positive = (lo: number, hi: number): Inputs => ({
    what: `2^[${lo}, ${hi})`,
    a: randomPairs(N, () => Math.abs(randomMagnitude(rng, lo, hi))),
    b: new Float32Array(2 * N),
  });
  await check(gpu, "sqrt", [positive(await lowest(gpu), 126), positive(-2, 2)]);
});

gpuTest("df64 exp: 1e-13 of float64 over [low ln 2, 88.72] (results >= 2^low)", async (gpu) => {
  const rng = freshRng("df64 exp");
  const keeps = await keepsSubnormals(gpu);
  const lowArg = Math.ceil(df64LowestExponent(keeps) * Math.LN2);
  const uniform = (lo: number, hi: number): Inputs => ({
    what: `[${lo}, ${hi})`,
    a: randomPairs(N, () => rng.uniform(lo, hi)),
    b: new Float32Array(2 * N),
  });
  await check(gpu, "exp", [
    uniform(lowArg, 88.72),
    uniform(-1, 1),
    {
      what: "±2^[-40, 0)",
      a: randomPairs(N, () => randomMagnitude(rng, -40, 0)),
      b: new Float32Array(2 * N),
    },
  ]);
  // Below 2^low the lo part runs into float32's subnormals (spacing 2^-149) or is flushed with
  // them (below 2^-126): the error is absolute there; past 88.7229 the result overflows to
  // +inf, below -103.9 it is 0.
  await check(gpu, "exp", [uniform(-103, lowArg)], DF64_RTOL, keeps ? 2 ** -148 : 2 ** -125);
  const out = await applyDf64Op(
    gpu,
    "exp",
    splitDf64Array([88.723, 1000, -104, -1000]),
    new Float32Array(8),
  );
  if (out.join() !== "Infinity,0,Infinity,0,0,0,0,0") throw new Error(`exp limits: ${out}`);
});

gpuTest("df64 log: 1e-13 of float64 over [2^low, 2^126), near 1, and at edges", async (gpu) => {
  const rng = freshRng("df64 log");
  const low = await lowest(gpu);
  const positive = (what: string, gen: () => number): Inputs => ({
    what,
    a: randomPairs(N, gen),
    b: new Float32Array(2 * N),
  });
  // Near 1 the result is small and its relative error is what the Newton step must keep.
  await check(gpu, "log", [
    positive(`2^[${low}, 126)`, () => Math.abs(randomMagnitude(rng, low, 126))),
    positive("1 ± 2^[-40, -1)", () => 1 + randomMagnitude(rng, -40, -1)),
    cases("edges", [[1, 0], [2, 0], [Math.E, 0], [0.5, 0], [1e38, 0], [2 ** low, 0]]),
  ]);
});

gpuTest("df64 edge cases: zeros, signs, huge, tiny, cancellation", async (gpu) => {
  const rng = freshRng("df64 edges");
  const x = randomMagnitude(rng, -10, 10), t = x * 2 ** -30 * rng.uniform(0.5, 1);
  // tiny: 1e-30 on an adapter that keeps subnormals, 2^24 times more on one that flushes them
  // (and a cancellation down to tiny · 2^-20 starts 2^20 higher there).
  const keeps = await keepsSubnormals(gpu), low = df64LowestExponent(keeps);
  const tiny = 1.2676506 * 2 ** low, cancel = keeps ? tiny : tiny * 2 ** 20;
  const signs: [number, number][] = [[3, 5], [-3, 5], [3, -5], [-3, -5]];
  const zeros: [number, number][] = [[0, 0], [0, -0], [-0, 0], [-0, -0], [0, x], [x, 0], [-0, x]];
  const add = cases("edges", [
    ...zeros,
    ...signs,
    [x, -x],
    [x, -x + t], // a + (-a + tiny)
    [-x, x - t],
    [1, -1 + 2 ** -40],
    [1e38, -1e38 + 1e31],
    [1e38, 1e37],
    [-1e38, -1e38],
    [cancel, -cancel * (1 - 2 ** -20)],
    [tiny, 0.3 * tiny],
  ]);
  await check(gpu, "add", [add]);
  await check(gpu, "sub", [{ ...add, b: add.b.map((v) => -v) }]);
  const mul = cases("edges", [
    ...zeros,
    ...signs,
    [1e19, 1e19],
    [-1e37, 3],
    [1e38, -1],
    [Math.sqrt(tiny), Math.sqrt(tiny)],
    [-tiny, 1],
    [tiny, 3e5],
    [x, 1 / x],
  ]);
  await check(gpu, "mul", [mul]);
  await check(gpu, "div", [cases("edges", [
    [0, x],
    [-0, x],
    [0, -x],
    ...signs,
    [x, x],
    [1, 3],
    [-2, 7],
    [1e38, 3],
    [1e38, 1e19],
    [tiny, 3],
    [tiny, Math.sqrt(tiny)],
    [3e37, 1e-1],
  ])]);
  await check(gpu, "sqrt", [cases("edges", [
    [0, 0],
    [-0, 0],
    [1, 0],
    [2, 0],
    [4, 0],
    [1e38, 0],
    [tiny, 0],
    [2 ** low, 0],
    [x * x, 0],
  ])]);
  await check(gpu, "exp", [cases("edges", [
    [0, 0],
    [-0, 0],
    [1, 0],
    [-1, 0],
    [Math.LN2 * 64, 0],
    [-Math.LN2 * 64, 0],
    [88.72, 0],
    [Math.ceil(low * Math.LN2), 0],
    [tiny, 0],
    [-tiny, 0],
  ])]);
});

/** Inputs on which a primitive built with `options` goes wrong, with the op's name. */
async function failures(gpu: Gpu, op: Df64Op, inputs: Inputs, options: Df64Options) {
  const out = await applyDf64Op(gpu, op, inputs.a, inputs.b, options);
  const limit = op === "two_sum" || op === "two_prod" ? 0 : DF64_RTOL;
  const { errors, worst } = df64Errors(op, inputs.a, inputs.b, out);
  const failed = errors.filter((e) => !(e <= limit)).length;
  console.error(
    `df64 ${op} with ${JSON.stringify(options)}: ${failed} of ${errors.length} fail, ` +
      `worst ${worst.error.toExponential(2)}`,
  );
  return failed;
}

gpuTest("df64 on llvmpipe: without the barrier, or with fma, the primitives break", async (gpu) => {
  const rng = freshRng("df64 barrier");
  const f32 = () => randomPairs(N, () => randomMagnitude(rng, -14, 14), true);
  const sums = { what: "sums", a: f32(), b: f32() };
  const exps = {
    what: "exp",
    a: randomPairs(N, () => rng.uniform(-10, 10)),
    b: new Float32Array(2 * N),
  };
  const found: Record<string, number> = {
    twoSumBare: await failures(gpu, "two_sum", sums, { barrier: "none" }),
    twoSumMul: await failures(gpu, "two_sum", sums, { barrier: "mul" }),
    expMul: await failures(gpu, "exp", exps, { barrier: "mul" }),
    twoProdBare: await failures(gpu, "two_prod", sums, { barrier: "none" }),
    twoProdFma: await failures(gpu, "two_prod", sums, { twoProd: "fma" }),
  };
  // The defaults are exact (the other tests); what the alternatives do is the compiler's and
  // the driver's business, so it is asserted only on the adapter where it was measured.
  if (!gpu.adapterDescription.includes("llvmpipe")) return;
  const fails = { twoSumBare: true, twoSumMul: false, expMul: true, twoProdBare: false };
  for (const [k, expected] of Object.entries(fails)) {
    if ((found[k] > 0) !== expected) {
      throw new Error(`llvmpipe: ${k} ${expected ? "no longer fails" : "now fails"}: ${found[k]}`);
    }
  }
  // WGSL's fma is not fused here: fma(a, b, -a*b) is 0, so fma-TwoProduct is wrong everywhere.
  if (found.twoProdFma < N / 2) throw new Error(`llvmpipe fma looks fused: ${found.twoProdFma}`);
});

Deno.test("df64 WGSL: every op variant names its barrier and primitive", () => {
  for (const op of ["add", "exp", "two_prod"] as Df64Op[]) {
    const code = df64OpWgsl(op);
    if (!code.includes("df_init(u.df_one)") || !code.includes(DF64_WGSL)) throw new Error(op);
  }
  if (!df64OpWgsl("two_prod", { twoProd: "fma" }).includes("fma(a, b, -p)")) throw new Error("fma");
  if (!df64OpWgsl("add", { barrier: "none" }).includes("  return x;\n")) throw new Error("none");
});
