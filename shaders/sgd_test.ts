import {
  type Gpu,
  packRunScalars,
  poison,
  readReals,
  realBuffer,
  runDispatches,
  runScalarsBytes,
  type RunScalarValues,
  storageBuffer,
  uploadReals,
  view,
} from "./gpu.ts";
import { gpuTest, randomReals, stackedReals } from "./test_gpu.ts";
import { sgdStep } from "../reference/ops.ts";
import type { Rng } from "../core/prng.ts";
import { assertClose, freshRng } from "../core/test_util.ts";
import { encodeReals, type Precision, type Reals } from "./precision.ts";
import { sgdKernel } from "./sgd.ts";

/** The fields SGD does not read: NaN, so reading one would show. */
const UNREAD = { eps: NaN, rescale: NaN, perturb: NaN, epsNext: NaN, seed: 0, step: 0 };

/**
 * One step's RunScalars of run r, exact in `precision`; run 0 has no shrink on O, run 1 no
 * momentum.
 */
function randomScalars(rng: Rng, precision: Precision, r: number): RunScalarValues {
  const real = (lo: number, hi: number) => randomReals(rng, precision, 1, lo, hi)[0];
  return {
    ...UNREAD,
    lrS: real(0.01, 0.5),
    wdS: real(0, 0.05),
    shrinkS: real(0, 0.02),
    lrO: real(0.01, 0.5),
    wdO: real(0, 0.05),
    shrinkO: r === 0 ? 0 : real(0, 0.02),
    momentum: r === 1 ? 0 : real(0.5, 0.95),
  };
}

/** A storage buffer for the RunScalars of `runs`. */
function scalarsBuffer(gpu: Gpu, precision: Precision, runs: number): GPUBuffer {
  return storageBuffer(gpu, runs, "scalars", runScalarsBytes(precision));
}

/** Tolerances of the GPU's params and bufs against the float64 reference. */
interface Tolerance {
  rtol: number;
  atol: number;
}

/**
 * Three SGD steps of fresh random grads and scalars on every [runs, size, sEnd] of `shapes`,
 * against the float64 `sgdStep`; with `previous`, the previous slot must hold S's weights the
 * GPU had before the last step, bit for bit, and nothing else.
 */
async function checkSteps(
  gpu: Gpu,
  precision: Precision,
  shapes: number[][],
  previous: boolean,
  tol: Tolerance,
): Promise<void> {
  const rng = freshRng(`sgd ${precision}${previous ? " previous" : ""}`);
  const steps = 3;
  for (const [runs, size, sEnd] of shapes) {
    const off = 2, stride = size + 3; // NaN gaps around every run catch stray writes
    const stacked = () => stackedReals(rng, precision, runs, size, stride, off);
    const p = stacked(), buf = stacked();
    const bufP = uploadReals(gpu, precision, p), bufM = uploadReals(gpu, precision, buf);
    const bufG = realBuffer(gpu, precision, p.length);
    const bufS = scalarsBuffer(gpu, precision, runs);
    const prevStride = sEnd + 1, bufPrev = realBuffer(gpu, precision, runs * prevStride + 1);
    poison(gpu, bufPrev);
    const dispatch = sgdKernel(gpu, {
      precision,
      runs,
      size,
      sEnd,
      params: view(bufP, stride, off),
      grads: view(bufG, stride, off),
      bufs: view(bufM, stride, off),
      scalars: bufS,
      previous: previous ? view(bufPrev, prevStride, 1) : undefined,
    });
    const slice = (a: Reals, r: number) => a.subarray(off + r * stride, off + r * stride + size);
    const refP = Array.from({ length: runs }, (_, r) => Float64Array.from(slice(p, r)));
    const refB = Array.from({ length: runs }, (_, r) => Float64Array.from(slice(buf, r)));
    let before: Reals = p;
    for (let step = 0; step < steps; step++) {
      const grads = stacked();
      const records = Array.from({ length: runs }, (_, r) => randomScalars(rng, precision, r));
      // queue writes are ordered with submits, as in the trainer
      gpu.device.queue.writeBuffer(bufS, 0, packRunScalars(precision, records));
      gpu.device.queue.writeBuffer(bufG, 0, encodeReals(precision, grads));
      if (previous && step === steps - 1) before = await readReals(gpu, precision, bufP, p.length);
      runDispatches(gpu, [dispatch]);
      records.forEach((s, r) => {
        const g = grads.subarray(off + r * stride, off + r * stride + size), m = s.momentum;
        const [pS, gS, bS] = [refP[r], g, refB[r]].map((a) => a.subarray(0, sEnd));
        const [pO, gO, bO] = [refP[r], g, refB[r]].map((a) => a.subarray(sEnd));
        sgdStep(pS, gS, bS, { lr: s.lrS, wd: s.wdS, shrink: s.shrinkS, momentum: m });
        sgdStep(pO, gO, bO, { lr: s.lrO, wd: s.wdO, shrink: s.shrinkO, momentum: m });
      });
    }
    const gotP = await readReals(gpu, precision, bufP, p.length);
    const gotB = await readReals(gpu, precision, bufM, p.length);
    for (let r = 0; r < runs; r++) {
      const what = `${precision} R=${runs} size=${size} sEnd=${sEnd} run ${r}`;
      assertClose(slice(gotP, r), refP[r], tol.rtol, tol.atol, `${what} params`);
      assertClose(slice(gotB, r), refB[r], tol.rtol, tol.atol, `${what} bufs`);
    }
    for (let k = 0; k < p.length; k++) {
      const inRun = k >= off && (k - off) % stride < size;
      if (!inRun && !(Number.isNaN(gotP[k]) && Number.isNaN(gotB[k]))) {
        throw new Error(`sgd wrote outside the runs at element ${k}`);
      }
    }
    if (previous) {
      const got = await readReals(gpu, precision, bufPrev, runs * prevStride + 1);
      for (let k = 0; k < got.length; k++) {
        const r = Math.floor((k - 1) / prevStride), i = (k - 1) % prevStride;
        const want = k >= 1 && i < sEnd ? before[off + r * stride + i] : NaN;
        if (!Object.is(got[k], want)) {
          throw new Error(`R=${runs} size=${size}: previous[${k}] = ${got[k]}, want ${want}`);
        }
      }
    }
    for (const b of [bufP, bufM, bufG, bufS, bufPrev]) b.destroy();
  }
}

gpuTest(
  "sgdKernel: 3 steps, per-run per-group lr/wd/shrink/momentum, vs float64 sgdStep",
  // [runs, size, sEnd]; the last two exceed the 64 workgroups of 256, so the grid-stride loop
  // runs. |p|, |buf| <= ~5 after 3 steps; f32 rounding of a few operations per step.
  (gpu) =>
    checkSteps(
      gpu,
      "f32",
      [[1, 1, 0], [3, 7, 3], [3, 1000, 777], [3, 70001, 50003], [1, 1100001, 1100001]],
      false,
      { rtol: 2e-6, atol: 2e-6 },
    ),
);

// df64: ~12 operations per element over 3 steps, each within ~1e-14 of its result (df64.ts).
// keep·p - lr·buf and grad + wd·p may cancel, so the earlier steps' errors, relative to |p|,
// |buf| <= ~3, stay as absolute errors on results near 0 (relative errors up to 1e-9 seen there):
// atol. Measured worst |error| 2.2e-14 (1.2e-14 of the run's largest |p|) in 6 runs.
// The grid-stride loop runs on the last shape.
const DF64_SHAPES = [[1, 1, 0], [3, 7, 3], [3, 1000, 777], [2, 20000, 12345]];
const DF64_TOLERANCE = { rtol: 1e-13, atol: 1e-13 };

gpuTest(
  "sgdKernel in df64: 3 steps vs float64 sgdStep",
  (gpu) => checkSteps(gpu, "df64", DF64_SHAPES, false, DF64_TOLERANCE),
);

gpuTest(
  "sgdKernel in df64 with previous: 3 steps vs float64 sgdStep, S's weights before the last step",
  (gpu) => checkSteps(gpu, "df64", DF64_SHAPES, true, DF64_TOLERANCE),
);

gpuTest(
  "sgdKernel with previous: stores S's weights before the step, nothing else; the step is unchanged",
  async (gpu) => {
    const rng = freshRng("sgd previous");
    const precision = "f32";
    for (const [runs, size, sEnd] of [[1, 5, 5], [3, 1000, 777], [3, 70001, 50003]]) {
      const off = 2, stride = size + 3;
      const stacked = () => stackedReals(rng, precision, runs, size, stride, off);
      const p = stacked(), buf = stacked(), grads = stacked();
      const records = Array.from({ length: runs }, () => ({
        ...UNREAD,
        lrS: 0.1,
        lrO: 0.1,
        wdS: 5e-4,
        wdO: 5e-4,
        shrinkS: 0,
        shrinkO: 0,
        momentum: 0.9,
      }));
      const prevStride = sEnd + 1;
      const run = async (previous: boolean) => {
        const bufP = uploadReals(gpu, precision, p), bufM = uploadReals(gpu, precision, buf);
        const bufPrev = realBuffer(gpu, precision, runs * prevStride + 1);
        poison(gpu, bufPrev);
        const bufS = scalarsBuffer(gpu, precision, runs);
        gpu.device.queue.writeBuffer(bufS, 0, packRunScalars(precision, records));
        runDispatches(gpu, [sgdKernel(gpu, {
          runs,
          size,
          sEnd,
          params: view(bufP, stride, off),
          grads: view(uploadReals(gpu, precision, grads), stride, off),
          bufs: view(bufM, stride, off),
          scalars: bufS,
          previous: previous ? view(bufPrev, prevStride, 1) : undefined,
        })]);
        return {
          params: await readReals(gpu, precision, bufP, p.length),
          previous: await readReals(gpu, precision, bufPrev, runs * prevStride + 1),
        };
      };
      const plain = await run(false), saving = await run(true);
      if (saving.params.some((v, i) => !Object.is(v, plain.params[i]))) {
        throw new Error("storing the previous weights changed the step");
      }
      for (let k = 0; k < saving.previous.length; k++) {
        const r = Math.floor((k - 1) / prevStride), i = (k - 1) % prevStride;
        const want = k >= 1 && i < sEnd ? p[off + r * stride + i] : NaN;
        if (!Object.is(saving.previous[k], want)) {
          throw new Error(
            `R=${runs} size=${size}: previous[${k}] = ${saving.previous[k]}, want ${want}`,
          );
        }
      }
    }
  },
);
