import {
  type Gpu,
  packRunScalars,
  readFloats,
  readReals,
  runDispatches,
  type RunScalarValues,
  uploadBuffer,
  uploadReals,
  view,
} from "./gpu.ts";
import { gpuTest, stackedReals } from "./test_gpu.ts";
import { type Precision, randomReals, type Reals } from "./precision.ts";
import { assertClose, freshRng, stackedFloats } from "../core/test_util.ts";
import { rescaleKernel, rescaleStatsKernel } from "./scale_s.ts";

type Rng = ReturnType<typeof freshRng>;

/** Run-stacked random vectors of `size`, runs `stride` apart from `off`, NaN in the gaps. */
function stacked(rng: Rng, runs: number, size: number, stride: number, off: number) {
  return stackedFloats(rng, runs, size, stride, off, -2, 2);
}

/** Throws at the first element whose bits differ (NaN gaps compare equal by bits). */
function assertBits(got: Float32Array, want: Float32Array, what: string): void {
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let k = 0; k < w.length; k++) {
    if (g[k] !== w[k]) {
      throw new Error(`${what}[${k}] = ${got[k]}, expected ${want[k]} bit for bit`);
    }
  }
}

/**
 * Throws unless `got` is `want` within `rtols[j]` on the `sEnd` elements from `starts[j]`, and
 * bit for bit everywhere else (O, gaps, untouched runs; NaN matches NaN).
 */
function assertOnS(
  got: Reals,
  want: Float64Array,
  starts: number[],
  sEnd: number,
  rtols: number[],
  what: string,
): void {
  const inS = new Uint8Array(want.length);
  starts.forEach((k, j) => {
    const s = (a: Reals) => a.subarray(k, k + sEnd);
    assertClose(s(got), s(want), rtols[j], 0, `${what} from ${k}`);
    inS.fill(1, k, k + sEnd);
  });
  for (let k = 0; k < want.length; k++) {
    if (!inS[k] && !Object.is(got[k], want[k])) {
      throw new Error(`${what}[${k}] = ${got[k]}, expected ${want[k]} untouched`);
    }
  }
}

// df64 products: p·s, buf·(1/s), var·(s·s), p·(1 + a·xi) are at most two df64 operations
// without cancellation, each within 1.3e-14 of its result (df64.ts's measured worst), so
// within ~3e-14: 1e-13 leaves a margin. Powers of two must stay exact.
const DF64_RTOL = 1e-13;

/** Every real field NaN (a kernel that reads one it should not shows it), seed and step 0. */
const UNREAD: RunScalarValues = {
  lrS: NaN,
  wdS: NaN,
  shrinkS: NaN,
  lrO: NaN,
  wdO: NaN,
  shrinkO: NaN,
  momentum: NaN,
  eps: NaN,
  rescale: NaN,
  perturb: NaN,
  epsNext: NaN,
  seed: 0,
  step: 0,
};

/** A RunScalars buffer with the given fields per run, every other one {@link UNREAD}. */
function uploadScalars(
  gpu: Gpu,
  precision: Precision,
  runs: Partial<RunScalarValues>[],
): GPUBuffer {
  return uploadBuffer(gpu, packRunScalars(precision, runs.map((v) => ({ ...UNREAD, ...v }))));
}

/** RunScalars with `.rescale` = factors[r] for run r and every other field unread. */
function rescaleScalars(gpu: Gpu, factors: number[], precision: Precision = "f32"): GPUBuffer {
  return uploadScalars(gpu, precision, factors.map((rescale) => ({ rescale })));
}

// [runs, sEnd, size]; the last exceeds 4096 workgroups (grid-stride loop).
const SHAPES = [[1, 1, 3], [3, 1000, 1300], [3, 70001, 90000], [1, 1100001, 1100010]];

gpuTest("rescaleKernel: p*2^k and buf/2^k bit-exact on S, O and gaps untouched", async (gpu) => {
  const rng = freshRng("rescale");
  for (const [runs, sEnd, size] of SHAPES) {
    const off = 3, stride = size + 2;
    // params and bufs share one buffer at disjoint ranges (both writable: allowed)
    const p = stacked(rng, runs, size, stride, off);
    const bOff = p.length + 5;
    const both = new Float32Array(bOff + runs * stride).fill(NaN);
    both.set(p);
    both.set(stacked(rng, runs, size, stride, 0), bOff);
    const buf = uploadBuffer(gpu, both);
    const factors = runs === 1 ? [2 ** -20] : [1, 2 ** -7, 2 ** 5];
    const bufS = rescaleScalars(gpu, factors);
    runDispatches(gpu, [
      rescaleKernel(gpu, {
        runs,
        sEnd,
        params: view(buf, stride, off),
        bufs: view(buf, stride, bOff),
        scalars: bufS,
      }),
    ]);
    const got = await readFloats(gpu, buf, both.length);
    const want = both.slice();
    for (let r = 0; r < runs; r++) {
      for (let i = 0; i < sEnd; i++) {
        want[off + r * stride + i] *= factors[r]; // exact: powers of two
        want[bOff + r * stride + i] /= factors[r];
      }
    }
    assertBits(got, want, `rescale R=${runs} sEnd=${sEnd}`);
    buf.destroy();
    bufS.destroy();
  }
});

gpuTest(
  "rescaleStatsKernel: plain running mean*s and var*s^2 bit-exact, other runs untouched",
  async (gpu) => {
    const rng = freshRng("rescale-stats");
    for (const [runs, size] of [[1, 1], [3, 37], [3, 513]]) {
      const stride = size + 1;
      const mean = stacked(rng, runs, size, stride, 0),
        variance = stacked(rng, runs, size, stride, 0);
      const mBuf = uploadBuffer(gpu, mean), vBuf = uploadBuffer(gpu, variance);
      const factors = runs === 1 ? [2 ** 3] : [1, 2 ** -16, 2 ** 4];
      const sBuf = rescaleScalars(gpu, factors);
      runDispatches(gpu, [
        rescaleStatsKernel(gpu, {
          runs,
          size,
          mean: view(mBuf, stride),
          var: view(vBuf, stride),
          scalars: sBuf,
        }),
      ]);
      const wantM = mean.slice(), wantV = variance.slice();
      for (let r = 0; r < runs; r++) {
        for (let i = 0; i < size; i++) {
          wantM[r * stride + i] *= factors[r];
          wantV[r * stride + i] *= factors[r] ** 2;
        }
      }
      assertBits(await readFloats(gpu, mBuf, mean.length), wantM, `mean R=${runs}`);
      assertBits(await readFloats(gpu, vBuf, variance.length), wantV, `var R=${runs}`);
      for (const b of [mBuf, vBuf, sBuf]) b.destroy();
    }
  },
);

gpuTest(
  "rescaleKernel: a factor that is not a power of two falls back to p*s, buf/s",
  async (gpu) => {
    const rng = freshRng("rescale3");
    const runs = 3, sEnd = 777, stride = 800;
    const p = stacked(rng, runs, stride, stride, 0), b = stacked(rng, runs, stride, stride, 0);
    const bufP = uploadBuffer(gpu, p), bufB = uploadBuffer(gpu, b);
    const factors = [3, 0.1, 1.5];
    runDispatches(gpu, [
      rescaleKernel(gpu, {
        runs,
        sEnd,
        params: view(bufP, stride),
        bufs: view(bufB, stride),
        scalars: rescaleScalars(gpu, factors),
      }),
    ]);
    const gotP = await readFloats(gpu, bufP, p.length),
      gotB = await readFloats(gpu, bufB, p.length);
    const wantP = p.map((
      x,
      k,
    ) => (k % stride < sEnd ? x * Math.fround(factors[Math.floor(k / stride)]) : x));
    const wantB = b.map((
      x,
      k,
    ) => (k % stride < sEnd ? x / Math.fround(factors[Math.floor(k / stride)]) : x));
    assertClose(gotP, wantP, 1.2e-7, 0, "p*s");
    assertClose(gotB, wantB, 4e-7, 0, "buf/s (WGSL division: 2.5 ULP)");
  },
);

gpuTest(
  "rescaleKernel in df64: p*s, buf/s exact for powers of two, within 1e-13 otherwise",
  async (gpu) => {
    const rng = freshRng("rescale df64");
    const precision = "df64";
    // Three powers of two (exact), then three others; the last one's hi is a power of two but
    // its lo is not 0: had it taken the exact path, buf would be off by 2^-40 (9e-13) relative.
    const factors = [1, 2 ** -7, 2 ** 5, 3, randomReals(rng, precision, 1, 0.05, 0.2)[0]]
      .concat(2 ** -7 * (1 + 2 ** -40));
    const rtols = [0, 0, 0, DF64_RTOL, DF64_RTOL, DF64_RTOL];
    const runs = factors.length;
    for (const [sEnd, size] of [[1, 3], [777, 1000], [20000, 20003]]) {
      const off = 3, stride = size + 2;
      // params and bufs share one buffer at disjoint ranges, as in the trainer
      const p = stackedReals(rng, "df64", runs, size, stride, off, -2, 2);
      const bOff = p.length + 5;
      const both = new Float64Array(bOff + runs * stride).fill(NaN);
      both.set(p);
      both.set(stackedReals(rng, "df64", runs, size, stride, 0, -2, 2), bOff);
      const buf = uploadReals(gpu, precision, both);
      const bufS = rescaleScalars(gpu, factors, precision);
      runDispatches(gpu, [
        rescaleKernel(gpu, {
          precision,
          runs,
          sEnd,
          params: view(buf, stride, off),
          bufs: view(buf, stride, bOff),
          scalars: bufS,
        }),
      ]);
      const want = both.slice();
      const starts = factors.flatMap((_, r) => [off + r * stride, bOff + r * stride]);
      factors.forEach((s, r) => {
        for (let i = 0; i < sEnd; i++) {
          want[off + r * stride + i] *= s;
          want[bOff + r * stride + i] /= s;
        }
      });
      const got = await readReals(gpu, precision, buf, both.length);
      assertOnS(got, want, starts, sEnd, rtols.flatMap((t) => [t, t]), `rescale sEnd=${sEnd}`);
      buf.destroy();
      bufS.destroy();
    }
  },
);

gpuTest("rescaleStatsKernel in df64: mean*s and var*s^2, exact for a power of two", async (gpu) => {
  const rng = freshRng("rescale-stats df64");
  const precision = "df64";
  const factors = [2 ** 3, randomReals(rng, precision, 1, 0.05, 4)[0], 2 ** -16 * (1 + 2 ** -30)];
  const rtols = [0, DF64_RTOL, DF64_RTOL];
  const runs = factors.length;
  for (const size of [1, 513]) {
    const stride = size + 1;
    const mean = stackedReals(rng, "df64", runs, size, stride, 0, -2, 2);
    const variance = stackedReals(rng, "df64", runs, size, stride, 0, -2, 2).map(Math.abs);
    const mBuf = uploadReals(gpu, precision, mean), vBuf = uploadReals(gpu, precision, variance);
    const sBuf = rescaleScalars(gpu, factors, precision);
    runDispatches(gpu, [
      rescaleStatsKernel(gpu, {
        precision,
        runs,
        size,
        mean: view(mBuf, stride),
        var: view(vBuf, stride),
        scalars: sBuf,
      }),
    ]);
    const wantM = mean.slice(), wantV = variance.slice();
    factors.forEach((s, r) => {
      for (let i = 0; i < size; i++) {
        wantM[r * stride + i] *= s;
        wantV[r * stride + i] *= s * s;
      }
    });
    const starts = factors.map((_, r) => r * stride);
    const read = (b: GPUBuffer) => readReals(gpu, precision, b, mean.length);
    assertOnS(await read(mBuf), wantM, starts, size, rtols, `mean size=${size}`);
    assertOnS(await read(vBuf), wantV, starts, size, rtols, `var size=${size}`);
    for (const b of [mBuf, vBuf, sBuf]) b.destroy();
  }
});
