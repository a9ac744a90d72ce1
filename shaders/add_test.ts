import {
  type Gpu,
  poison,
  readFloats,
  readReals,
  realBuffer,
  runDispatches,
  type TensorView,
  uploadBuffer,
  uploadReals,
} from "./gpu.ts";
import { add } from "../reference/pool.ts";
import type { Rng } from "../core/prng.ts";
import { assertClose, assertThrows, freshRng, stackedFloats } from "../core/test_util.ts";
import { addKernel } from "./add.ts";
import type { Reals } from "./precision.ts";
import { gpuTest, stackedReals } from "./test_gpu.ts";

/** The precisions tested here. */
type Tested = "f32" | "df64";

/**
 * Relative tolerance of one addition against the float64 sum. float32 adds are correctly
 * rounded: half an ulp. df64's df_add keeps both error terms, so it stays within ~2^-47
 * relative even where the sum cancels (df64.ts: worst measured 6.7e-15): 1e-13 leaves a margin
 * of ~15 and still fails any float32 rounding (~6e-8) of hi or lo.
 */
const RTOL: Record<Tested, number> = { f32: 2 ** -24, df64: 1e-13 };

/** Run r of a run-stacked host array laid out like view `v` with `count` elements. */
function run(a: Reals, v: { offset: number; runStride: number }, r: number, count: number) {
  return a.subarray(v.offset + r * v.runStride, v.offset + r * v.runStride + count);
}

/** Whether element `i` of a buffer lies in one of view `v`'s R runs of `count` elements. */
function inside(i: number, v: { offset: number; runStride: number }, runs: number, count: number) {
  if (v.runStride === 0) return i >= v.offset && i < v.offset + count;
  const k = i - v.offset, r = Math.floor(k / v.runStride);
  return k >= 0 && r < runs && k - r * v.runStride < count;
}

/** Checks that every element outside `v`'s R runs of `count` is still NaN. */
function assertUntouched(
  a: Reals,
  v: TensorView,
  runs: number,
  count: number,
  what: string,
) {
  for (let i = 0; i < a.length; i++) {
    if (!inside(i, v, runs, count) && !Number.isNaN(a[i])) {
      throw new Error(`${what}: element ${i} written (${a[i]})`);
    }
  }
}

/**
 * In one submit: out = a + b into a poisoned buffer, then a += b in place (out = a's view), then
 * b = a + b in place (out = b's view). Inputs at offsets with padded run strides, NaN between.
 */
async function check(
  gpu: Gpu,
  rng: Rng,
  precision: Tested,
  runs: number,
  count: number,
): Promise<void> {
  const tag = `add ${precision} R${runs} count ${count}`;
  const aView = { offset: 5, runStride: count + 7 }, bView = { offset: 3, runStride: count + 2 };
  const outView = { offset: 2, runStride: count + 3 };
  const a0 = stackedReals(rng, precision, runs, count, aView.runStride, aView.offset);
  const b0 = stackedReals(rng, precision, runs, count, bView.runStride, bView.offset, -4, 4);
  const aBuf = uploadReals(gpu, precision, a0), bBuf = uploadReals(gpu, precision, b0);
  const outBuf = realBuffer(gpu, precision, outView.offset + runs * outView.runStride);
  poison(gpu, outBuf);
  const a = { buffer: aBuf, ...aView }, b = { buffer: bBuf, ...bView };
  const out = { buffer: outBuf, ...outView };
  runDispatches(gpu, [
    addKernel(gpu, { precision, runs, count, a, b, out }),
    addKernel(gpu, { precision, runs, count, a, b, out: a }),
    addKernel(gpu, { precision, runs, count, a, b, out: b }),
  ]);
  const [o, a1, b1] = await Promise.all([
    readReals(gpu, precision, outBuf, outView.offset + runs * outView.runStride),
    readReals(gpu, precision, aBuf, a0.length),
    readReals(gpu, precision, bBuf, b0.length),
  ]);
  const rtol = RTOL[precision];
  for (let r = 0; r < runs; r++) {
    const ar = run(a0, aView, r, count), br = run(b0, bView, r, count);
    const sum = add(ar, br);
    assertClose(run(o, outView, r, count), sum, rtol, 0, `${tag} run ${r} out`);
    assertClose(run(a1, aView, r, count), sum, rtol, 0, `${tag} run ${r} a += b`);
    // b = (a + b, as the GPU stored it in a) + b: one more rounding of the same size.
    const expect = add(run(a1, aView, r, count), br);
    assertClose(run(b1, bView, r, count), expect, rtol, 0, `${tag} run ${r} b = a + b`);
  }
  assertUntouched(o, out, runs, count, `${tag} out`);
  assertUntouched(a1, a, runs, count, `${tag} a`);
  assertUntouched(b1, b, runs, count, `${tag} b`);
}

for (const runs of [1, 3]) {
  gpuTest(`add: out = a + b, in place over a and over b, R=${runs}`, async (gpu) => {
    const rng = freshRng(`add R=${runs}`);
    // The largest needs more than the 64 capped workgroups: the grid-stride loop wraps.
    for (const count of [1, 7 * 5 * 3, 9 * 9 * 17, 4 * 32 * 32 * 16 + 13]) {
      await check(gpu, rng, "f32", runs, count);
    }
  });
}

gpuTest(
  "add: a, b and out in one buffer; b shared by all runs (runStride 0); a + a",
  async (gpu) => {
    const rng = freshRng("add shared buffer");
    const runs = 3, count = 1000;
    // [b (one copy) | a (3 runs, stride count + 1) | out (3 runs, stride count + 5)], NaN gaps.
    const bOff = 3, aOff = bOff + count + 2, outOff = aOff + runs * (count + 1) + 4;
    const all = new Float32Array(outOff + runs * (count + 5) + 2).fill(NaN);
    all.set(stackedFloats(rng, runs, count, count + 1, aOff).subarray(aOff), aOff);
    const b = stackedFloats(rng, 1, count, count, 0);
    all.set(b, bOff);
    const buffer = uploadBuffer(gpu, all);
    const aV = { buffer, offset: aOff, runStride: count + 1 };
    const bV = { buffer, offset: bOff, runStride: 0 };
    const outV = { buffer, offset: outOff, runStride: count + 5 };
    runDispatches(gpu, [addKernel(gpu, { runs, count, a: aV, b: bV, out: outV })]);
    let got = await readFloats(gpu, buffer, all.length);
    for (let r = 0; r < runs; r++) {
      const ar = run(all, aV, r, count);
      assertClose(run(got, outV, r, count), add(ar, b), RTOL.f32, 0, `run ${r} a + shared b`);
      assertClose(run(got, aV, r, count), ar, 0, 0, `run ${r} a unchanged`);
    }
    assertClose(got.subarray(bOff, bOff + count), b, 0, 0, "b unchanged");
    // a = a + a in place (all three slots one view): exact doubling.
    runDispatches(gpu, [addKernel(gpu, { runs, count, a: aV, b: aV, out: aV })]);
    got = await readFloats(gpu, buffer, all.length);
    for (let r = 0; r < runs; r++) {
      const ar = run(all, aV, r, count);
      assertClose(run(got, aV, r, count), add(ar, ar), 0, 0, `run ${r} a + a`);
    }
    for (let i = 0; i < all.length; i++) {
      const any = [aV, bV, outV].some((v) => inside(i, v, runs, count));
      if (!any && !Number.isNaN(got[i])) throw new Error(`element ${i} written (${got[i]})`);
    }
    assertThrows(
      () => addKernel(gpu, { runs: 4, count, a: aV, b: bV, out: outV }),
      "do not fit",
    );
  },
);

gpuTest("add in df64: out = a + b, in place over a and over b, R=3", async (gpu) => {
  const rng = freshRng("add df64");
  // The largest needs more than the 64 capped workgroups: the grid-stride loop wraps.
  for (const count of [1, 7 * 5 * 3, 2 * 64 * 256 + 13]) await check(gpu, rng, "df64", 3, count);
});
