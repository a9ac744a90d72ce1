import {
  type Gpu,
  poison,
  readFloats,
  RUN_SCALARS,
  runDispatches,
  storageBuffer,
  type TensorView,
  uploadBuffer,
} from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";
import {
  batchNormBackward,
  type BatchNormCache,
  batchNormEval,
  batchNormForward,
  updateRunningStats,
} from "../reference/ops.ts";
import type { Rng } from "../core/prng.ts";
import { assertClose, freshRng, randomFloats } from "../core/test_util.ts";
import { batchNormBackwardKernel, batchNormForwardKernel } from "./batchnorm.ts";

/** Places run-stacked tensors one after another, with a gap and padded run strides. */
class Arena {
  size = 0;
  alloc(runs: number, n: number, pad = 3): { offset: number; runStride: number; n: number } {
    const a = { offset: this.size + 1, runStride: n + pad, n };
    this.size = a.offset + runs * a.runStride;
    return a;
  }
}
type Slot = ReturnType<Arena["alloc"]>;

/** Fills the slots of `data` with `fill(run, slot)`; everything else stays as `data` was. */
function place(
  data: Float32Array,
  runs: number,
  slot: Slot,
  values: (r: number) => ArrayLike<number>,
) {
  for (let r = 0; r < runs; r++) data.set(values(r), slot.offset + r * slot.runStride);
}

/** Run r's elements of `slot` in `data`. */
function take(data: Float32Array, slot: Slot, r: number): Float32Array {
  return data.subarray(slot.offset + r * slot.runStride, slot.offset + r * slot.runStride + slot.n);
}

/** Throws unless every element of `data` outside `slots` is still NaN (nothing written out of range). */
function assertUntouched(data: Float32Array, runs: number, slots: Slot[], what: string) {
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

function viewOf(buffer: GPUBuffer, s: Slot): TensorView {
  return { buffer, offset: s.offset, runStride: s.runStride };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Compares with rtol 1e-4 and an atol of 1e-5 of the data's largest magnitude (its scale). */
function close(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, rtol = 1e-4) {
  assertClose(actual, expected, rtol, 1e-5 * maxAbs(expected) + 1e-30, what);
}

/**
 * dx = gamma*invStd/rows * (rows*dy - sum(dy) - xhat*sum(dy*xhat)) cancels: with few rows the
 * bracket is far smaller than its terms (rows = 2: it is (dy0 - dy1)(1 - xhat^2), and
 * 1 - xhat^2 = eps/(var+eps)), so float32 inputs and arithmetic carry an error of ~1e-7 of the
 * terms, not of the result. The atol is therefore 1e-5 of the terms' scale,
 * max|gamma*invStd| * max|dy|, which is about max|dx| whenever the rows do not cancel.
 */
function closeDx(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  gammaInvStd: ArrayLike<number>,
  dy: ArrayLike<number>,
  what: string,
) {
  const atol = 1e-5 * Math.max(maxAbs(expected), maxAbs(gammaInvStd) * maxAbs(dy));
  assertClose(actual, expected, 1e-4, atol, what);
}

/** A RunScalars buffer with a distinct eps and eps_next per run; returns the float32 values. */
function scalarsBuffer(gpu: Gpu, eps: number[], epsNext: number[]) {
  const words = new Float32Array(RUN_SCALARS.words * eps.length);
  eps.forEach((e, r) => {
    words[r * RUN_SCALARS.words + RUN_SCALARS.eps] = e;
    words[r * RUN_SCALARS.words + RUN_SCALARS.epsNext] = epsNext[r];
  });
  const buffer = uploadBuffer(gpu, words, "run scalars");
  return { buffer, eps: eps.map(Math.fround), epsNext: epsNext.map(Math.fround) };
}

const EPS = [1e-5, 1e-2, 0.3];
const EPS_NEXT = [0.5, 2e-3, 1e-4];

interface ForwardCase {
  runs: number;
  rows: number;
  features: number;
  mode: "train" | "eval";
  affine: boolean;
  save: boolean;
  /** undefined: no running statistics bound (train-mode probe). */
  running?: { update: boolean; unit: boolean; momentum: number };
  epsField: "eps" | "eps_next";
}

async function checkForward(gpu: Gpu, rng: Rng, c: ForwardCase): Promise<void> {
  const { runs: R, rows, features: F } = c;
  const N = rows * F;
  const tag = `R${R} ${rows}x${F} ${c.mode} affine=${c.affine} save=${c.save} ` +
    `running=${JSON.stringify(c.running)} ${c.epsField}`;
  // Inputs: x (own buffer); gamma, beta, unit in one "parameter" buffer; running mean and
  // var in one "statistics" buffer; y, xhat, invStd in one poisoned "activation" buffer.
  const inA = new Arena(), parA = new Arena(), statA = new Arena(), outA = new Arena();
  const xS = inA.alloc(R, N);
  const gS = parA.alloc(R, F), bS = parA.alloc(R, F), uS = parA.alloc(R, 1);
  const mS = statA.alloc(R, F), vS = statA.alloc(R, F);
  const yS = outA.alloc(R, N), hS = outA.alloc(R, N), iS = outA.alloc(R, F);
  const xs = Array.from({ length: R }, () => {
    const scale = rng.uniform(0.5, 4), shift = rng.uniform(-1, 1);
    return randomFloats(rng, N).map((v) => v * scale + shift);
  });
  const gammas = Array.from({ length: R }, () => randomFloats(rng, F, 0.5, 2));
  const betas = Array.from({ length: R }, () => randomFloats(rng, F));
  const unitSq = Array.from({ length: R }, () => Math.fround(rng.uniform(0.2, 50)));
  const rms = Array.from({ length: R }, () => randomFloats(rng, F, -0.5, 0.5));
  const rvs = Array.from({ length: R }, () => randomFloats(rng, F, 0.05, 2));

  const inData = new Float32Array(inA.size).fill(NaN);
  place(inData, R, xS, (r) => xs[r]);
  const parData = new Float32Array(parA.size).fill(NaN);
  place(parData, R, gS, (r) => gammas[r]);
  place(parData, R, bS, (r) => betas[r]);
  place(parData, R, uS, (r) => [unitSq[r]]);
  const statData = new Float32Array(statA.size).fill(NaN);
  place(statData, R, mS, (r) => rms[r]);
  place(statData, R, vS, (r) => rvs[r]);
  const inBuf = uploadBuffer(gpu, inData), parBuf = uploadBuffer(gpu, parData);
  const statBuf = uploadBuffer(gpu, statData);
  const outBuf = storageBuffer(gpu, outA.size);
  poison(gpu, outBuf);
  const sc = scalarsBuffer(gpu, EPS.slice(0, R), EPS_NEXT.slice(0, R));
  const epsOf = c.epsField === "eps" ? sc.eps : sc.epsNext;

  const dispatch = batchNormForwardKernel(gpu, {
    runs: R,
    rows,
    features: F,
    mode: c.mode,
    x: viewOf(inBuf, xS),
    y: viewOf(outBuf, yS),
    xhat: c.save ? viewOf(outBuf, hS) : undefined,
    invStd: c.save ? viewOf(outBuf, iS) : undefined,
    gamma: c.affine ? viewOf(parBuf, gS) : undefined,
    beta: c.affine ? viewOf(parBuf, bS) : undefined,
    scalars: sc.buffer,
    epsField: c.epsField,
    running: c.running && {
      mean: viewOf(statBuf, mS),
      var: viewOf(statBuf, vS),
      momentum: c.running.momentum,
      unit: c.running.unit ? viewOf(parBuf, uS) : undefined,
      update: c.running.update,
    },
  });
  runDispatches(gpu, [dispatch]);
  const out = await readFloats(gpu, outBuf);
  const stats = await readFloats(gpu, statBuf);

  for (let r = 0; r < R; r++) {
    const g = c.affine ? gammas[r] : undefined, b = c.affine ? betas[r] : undefined;
    const unit = c.running?.unit ? Math.sqrt(unitSq[r]) : 1;
    const what = `${tag} run ${r}`;
    if (c.mode === "eval") {
      const y = batchNormEval(xs[r], rows, F, epsOf[r], rms[r], rvs[r], unit, g, b);
      close(take(out, yS, r), y, `${what} y`);
      close(take(stats, mS, r), rms[r], `${what} running mean unchanged`, 0);
      close(take(stats, vS, r), rvs[r], `${what} running var unchanged`, 0);
      continue;
    }
    const ref = batchNormForward(xs[r], rows, F, epsOf[r], g, b);
    close(take(out, yS, r), ref.y, `${what} y`);
    if (c.save) {
      close(take(out, hS, r), ref.xhat, `${what} xhat`);
      close(take(out, iS, r), ref.invStd, `${what} invStd`);
    }
    const rm = Float64Array.from(rms[r]), rv = Float64Array.from(rvs[r]);
    if (c.running?.update) {
      updateRunningStats(rm, rv, ref, rows, Math.fround(c.running.momentum), unit);
    }
    close(take(stats, mS, r), rm, `${what} running mean`);
    close(take(stats, vS, r), rv, `${what} running var`);
  }
  assertUntouched(out, R, [yS, ...(c.save ? [hS, iS] : [])], `${tag} activation buffer`);
}

// 5000 rows: several lanes per feature (batchNormLanes), as BatchNorm2d over N·H·W rows.
const SHAPES: [number, number][] = [[2, 1], [37, 13], [128, 70], [300, 256], [5000, 11]];

for (const runs of [1, 3]) {
  gpuTest(
    `batchNormForwardKernel train (affine/plain, save, running update with/without unit), R=${runs}`,
    async (gpu) => {
      const rng = freshRng(`batchnorm forward train R=${runs}`);
      for (const [rows, features] of SHAPES) {
        const base = { runs, rows, features, mode: "train" as const };
        await checkForward(gpu, rng, {
          ...base,
          affine: true,
          save: true,
          running: { update: true, unit: true, momentum: 0.1 },
          epsField: "eps",
        });
        await checkForward(gpu, rng, {
          ...base,
          affine: false,
          save: true,
          running: { update: true, unit: false, momentum: 0.25 },
          epsField: "eps_next",
        });
        // The monitor's probe: train-mode statistics, nothing saved, running stats left alone.
        await checkForward(gpu, rng, {
          ...base,
          affine: true,
          save: false,
          running: { update: false, unit: true, momentum: 0.1 },
          epsField: "eps_next",
        });
        await checkForward(gpu, rng, { ...base, affine: false, save: false, epsField: "eps" });
      }
    },
  );

  gpuTest(
    `batchNormForwardKernel eval (running stats with/without unit), R=${runs}`,
    async (gpu) => {
      const rng = freshRng(`batchnorm forward eval R=${runs}`);
      for (const [rows, features] of SHAPES) {
        const base = { runs, rows, features, mode: "eval" as const, save: false };
        await checkForward(gpu, rng, {
          ...base,
          affine: true,
          running: { update: false, unit: true, momentum: 0.1 },
          epsField: "eps",
        });
        await checkForward(gpu, rng, {
          ...base,
          affine: false,
          running: { update: false, unit: false, momentum: 0.1 },
          epsField: "eps_next",
        });
      }
    },
  );

  gpuTest(`batchNormBackwardKernel (affine and plain), R=${runs}`, async (gpu) => {
    const rng = freshRng(`batchnorm backward R=${runs}`);
    for (const [rows, features] of SHAPES) {
      for (const affine of [true, false]) {
        await checkBackward(gpu, rng, runs, rows, features, affine);
      }
    }
  });
}

async function checkBackward(
  gpu: Gpu,
  rng: Rng,
  R: number,
  rows: number,
  F: number,
  affine: boolean,
): Promise<void> {
  const N = rows * F;
  const tag = `backward R${R} ${rows}x${F} affine=${affine}`;
  const inA = new Arena(), outA = new Arena();
  const dyS = inA.alloc(R, N), hS = inA.alloc(R, N), iS = inA.alloc(R, F), gS = inA.alloc(R, F);
  const dxS = outA.alloc(R, N), dgS = outA.alloc(R, F), dbS = outA.alloc(R, F);
  // xhat and invStd as a forward would leave them (float32), from random inputs.
  const caches: BatchNormCache[] = [];
  const dys: Float32Array[] = [], gammas: Float32Array[] = [];
  for (let r = 0; r < R; r++) {
    const ref = batchNormForward(randomFloats(rng, N, -2, 2), rows, F, EPS[r]);
    caches.push({
      ...ref,
      xhat: Float64Array.from(new Float32Array(ref.xhat)),
      invStd: Float64Array.from(new Float32Array(ref.invStd)),
    });
    dys.push(randomFloats(rng, N));
    gammas.push(randomFloats(rng, F, 0.5, 2));
  }
  const inData = new Float32Array(inA.size).fill(NaN);
  place(inData, R, dyS, (r) => dys[r]);
  place(inData, R, hS, (r) => caches[r].xhat);
  place(inData, R, iS, (r) => caches[r].invStd);
  place(inData, R, gS, (r) => gammas[r]);
  const inBuf = uploadBuffer(gpu, inData);
  const outBuf = storageBuffer(gpu, outA.size);
  poison(gpu, outBuf);
  runDispatches(gpu, [batchNormBackwardKernel(gpu, {
    runs: R,
    rows,
    features: F,
    dy: viewOf(inBuf, dyS),
    xhat: viewOf(inBuf, hS),
    invStd: viewOf(inBuf, iS),
    gamma: affine ? viewOf(inBuf, gS) : undefined,
    dx: viewOf(outBuf, dxS),
    dgamma: affine ? viewOf(outBuf, dgS) : undefined,
    dbeta: affine ? viewOf(outBuf, dbS) : undefined,
  })]);
  const out = await readFloats(gpu, outBuf);
  for (let r = 0; r < R; r++) {
    const ref = batchNormBackward(dys[r], caches[r], rows, F, affine ? gammas[r] : undefined);
    const gi = caches[r].invStd.map((v, j) => v * (affine ? gammas[r][j] : 1));
    closeDx(take(out, dxS, r), ref.dx, gi, dys[r], `${tag} run ${r} dx`);
    if (affine) {
      close(take(out, dgS, r), ref.dgamma, `${tag} run ${r} dgamma`);
      close(take(out, dbS, r), ref.dbeta, `${tag} run ${r} dbeta`);
    }
  }
  assertUntouched(out, R, [dxS, ...(affine ? [dgS, dbS] : [])], `${tag} output buffer`);
}

gpuTest(
  "batchNorm forward+backward at input scales 1, 1000, 1/1000 (eps scaled by c^2)",
  async (gpu) => {
    const rng = freshRng("batchnorm scale invariance");
    // Three runs see c * x with c = 1, 1000, 1/1000 and eps * c^2 (THEORY §5), the same dy
    // (a shared view, runStride 0): exactly, xhat and dgamma/dbeta are equal across runs and
    // dx scales by 1/c. Each run must match the float64 reference to relative tolerance.
    const scales = [1, 1000, 1e-3];
    const R = scales.length;
    for (const [rows, F] of [[2, 1], [37, 13], [300, 256]]) {
      const N = rows * F;
      const tag = `scale ${rows}x${F}`;
      const x0 = randomFloats(rng, N, -1, 1).map((v) => v + 0.3);
      const xs = scales.map((c) => x0.map((v) => v * c));
      const dy = Float32Array.from(randomFloats(rng, N));
      const gamma = Float32Array.from(randomFloats(rng, F, 0.5, 2));
      const beta = Float32Array.from(randomFloats(rng, F));
      const sc = scalarsBuffer(gpu, scales.map((c) => 1e-5 * c * c), [0, 0, 0]);
      const xBuf = uploadBuffer(gpu, Float32Array.from(xs.flatMap((x) => [...x])));
      const dyBuf = uploadBuffer(gpu, dy),
        gBuf = uploadBuffer(gpu, gamma),
        bBuf = uploadBuffer(gpu, beta);
      const yBuf = storageBuffer(gpu, R * N), hBuf = storageBuffer(gpu, R * N);
      const iBuf = storageBuffer(gpu, R * F), dxBuf = storageBuffer(gpu, R * N);
      const dgBuf = storageBuffer(gpu, R * F), dbBuf = storageBuffer(gpu, R * F);
      for (const b of [yBuf, hBuf, iBuf, dxBuf, dgBuf, dbBuf]) poison(gpu, b);
      const v = (buffer: GPUBuffer, runStride: number): TensorView => ({
        buffer,
        offset: 0,
        runStride,
      });
      const common = { runs: R, rows, features: F, gamma: v(gBuf, 0) };
      runDispatches(gpu, [
        batchNormForwardKernel(gpu, {
          ...common,
          mode: "train",
          x: v(xBuf, N),
          y: v(yBuf, N),
          xhat: v(hBuf, N),
          invStd: v(iBuf, F),
          beta: v(bBuf, 0),
          scalars: sc.buffer,
          epsField: "eps",
        }),
        batchNormBackwardKernel(gpu, {
          ...common,
          dy: v(dyBuf, 0),
          xhat: v(hBuf, N),
          invStd: v(iBuf, F),
          dx: v(dxBuf, N),
          dgamma: v(dgBuf, F),
          dbeta: v(dbBuf, F),
        }),
      ]);
      const [y, h, inv, dx, dg, db] = await Promise.all(
        [yBuf, hBuf, iBuf, dxBuf, dgBuf, dbBuf].map((b) => readFloats(gpu, b)),
      );
      const at = (a: Float32Array, r: number, n: number) => a.subarray(r * n, (r + 1) * n);
      for (let r = 0; r < R; r++) {
        const what = `${tag} c=${scales[r]}`;
        const fwd = batchNormForward(xs[r], rows, F, sc.eps[r], gamma, beta);
        const bwd = batchNormBackward(dy, fwd, rows, F, gamma);
        close(at(y, r, N), fwd.y, `${what} y`);
        close(at(h, r, N), fwd.xhat, `${what} xhat`);
        close(at(inv, r, F), fwd.invStd, `${what} invStd`);
        const gi = fwd.invStd.map((v, j) => v * gamma[j]);
        closeDx(at(dx, r, N), bwd.dx, gi, dy, `${what} dx`);
        close(at(dg, r, F), bwd.dgamma, `${what} dgamma`);
        close(at(db, r, F), bwd.dbeta, `${what} dbeta`);
        // Scale invariance of the GPU result itself: c * dx(c x) = dx(x).
        const dx0 = at(dx, 0, N);
        const gi0 = at(inv, 0, F).map((v, j) => v * gamma[j]);
        closeDx(at(dx, r, N).map((d) => d * scales[r]), dx0, gi0, dy, `${what} c*dx vs run c=1`);
        close(at(dg, r, F), at(dg, 0, F), `${what} dgamma vs run c=1`);
      }
    }
  },
);
