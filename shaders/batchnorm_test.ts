import {
  type Gpu,
  poison,
  readFloats,
  readReals,
  realBuffer,
  runDispatches,
  storageBuffer,
  type TensorView,
  uploadBuffer,
  uploadReals,
} from "./gpu.ts";
import {
  Arena,
  assertUntouched,
  dryView,
  epsScalars,
  gpuTest,
  maxAbs,
  place,
  take,
  viewOf,
} from "./test_gpu.ts";
import { channelSumsAtol, heldReals, randomReals } from "./precision.ts";
import {
  batchNormBackward,
  type BatchNormCache,
  batchNormEval,
  batchNormForward,
  batchNormReluBackward,
  batchNormReluForward,
  reluBackward,
  reluForward,
  updateRunningStats,
} from "../reference/ops.ts";
import type { Rng } from "../core/prng.ts";
import { assertClose, assertThrows, freshRng, randomFloats } from "../core/test_util.ts";
import {
  batchNormBackwardKernel,
  batchNormForwardKernel,
  batchNormSplit,
  type BatchNormTiling,
  DEFAULT_BATCHNORM_TILING,
  SPLIT_ROWS,
} from "./batchnorm.ts";
import { dryGpu } from "./dry_gpu.ts";

/**
 * Tolerances of a precision: rtol, and atol as a fraction of a scale of the data (largest
 * magnitude). Elements near zero (x near the mean, g·h near -b) keep only an absolute accuracy,
 * a few roundings of the terms that formed them, hence the atol. float32 (u = 6e-8): 1e-4 and
 * 1e-5, as always. df64 (df64.ts: each operation within ~1e-14 relative, ~2^-47): 1e-12 and
 * 1e-12, i.e. about 100 such roundings, the depth of the blocked sums (rows/SUM_BLOCK + SUM_BLOCK
 * + log2(lanes) additions) with margin.
 */
const TOL = {
  f32: { rtol: 1e-4, atol: 1e-5 },
  df64: { rtol: 1e-12, atol: 1e-12 },
} as const;
type Tested = keyof typeof TOL;

/**
 * Compares with the precision's rtol and its atol times the data's largest magnitude, or times
 * `conditioned` where the result's conditioning is worse than its own size.
 */
function close(
  p: Tested,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
  conditioned = 0,
) {
  const size = Math.max(maxAbs(expected), conditioned);
  assertClose(actual, expected, TOL[p].rtol, TOL[p].atol * size + 1e-30, what);
}

/**
 * dx = gamma*invStd/rows * (rows*dy - sum(dy) - xhat*sum(dy*xhat)) cancels: with few rows the
 * bracket is far smaller than its terms (rows = 2: it is (dy0 - dy1)(1 - xhat^2), and
 * 1 - xhat^2 = eps/(var+eps), 4e-5 of the terms for eps = 1e-5), so the arithmetic carries an
 * error of a few roundings (float32 ~1e-7, df64 ~1e-14) of the terms, not of the result. The
 * atol is therefore the precision's atol fraction of the terms' scale, max|gamma*invStd| *
 * max|dy|, which is about max|dx| whenever the rows do not cancel.
 */
function closeDx(
  p: Tested,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  gammaInvStd: ArrayLike<number>,
  dy: ArrayLike<number>,
  what: string,
) {
  const atol = TOL[p].atol * Math.max(maxAbs(expected), maxAbs(gammaInvStd) * maxAbs(dy));
  assertClose(actual, expected, TOL[p].rtol, atol, what);
}

/**
 * Per-feature sums of `term` over `elements` (dgamma = Σ dy·xhat, dbeta = Σ dy): rtol, and
 * `roundings` times channelSumsAtol, a few roundings of the feature's Σ|term|: with few rows the
 * terms cancel (2 rows: dgamma = (dy0 - dy1)·xhat0), and their roundings are what remains.
 */
function closeSums(
  p: Tested,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  elements: number,
  term: (k: number) => number,
  what: string,
  roundings = 1,
) {
  const atol = roundings * channelSumsAtol(p, elements, expected.length, term);
  assertClose(actual, expected, TOL[p].rtol, atol, what);
}

const EPS = [1e-5, 1e-2, 0.3];
const EPS_NEXT = [0.5, 2e-3, 1e-4];

interface ForwardCase {
  precision: Tested;
  runs: number;
  rows: number;
  features: number;
  mode: "train" | "eval";
  affine: boolean;
  save: boolean;
  /** undefined: no running statistics bound (train-mode probe). */
  running?: { update: boolean; unit: boolean; momentum: number };
  epsField: "eps" | "eps_next";
  /** The fused ReLU: y = relu(BatchNorm(x)). */
  relu?: boolean;
  /** The kernels' tiling (absent: the default). */
  tiling?: Partial<BatchNormTiling>;
}

/** The training step's forward: affine, xhat saved, running statistics updated in norm units. */
const TRAINING: Omit<ForwardCase, "precision" | "runs" | "rows" | "features"> = {
  mode: "train",
  affine: true,
  save: true,
  running: { update: true, unit: true, momentum: 0.1 },
  epsField: "eps",
};

async function checkForward(gpu: Gpu, rng: Rng, c: ForwardCase): Promise<void> {
  const { precision: p, runs: R, rows, features: F } = c;
  const N = rows * F;
  const tag = `${p} R${R} ${rows}x${F} ${c.mode} affine=${c.affine} save=${c.save} ` +
    `running=${JSON.stringify(c.running)} ${c.epsField} relu=${!!c.relu}` +
    (c.tiling ? ` tiling=${JSON.stringify(c.tiling)}` : "");
  // Inputs: x (own buffer); gamma, beta, unit in one "parameter" buffer; running mean and
  // var in one "statistics" buffer; y, xhat, invStd in one poisoned "activation" buffer.
  const inA = new Arena(), parA = new Arena(), statA = new Arena(), outA = new Arena();
  const xS = inA.alloc(R, N);
  const gS = parA.alloc(R, F), bS = parA.alloc(R, F), uS = parA.alloc(R, 1);
  const mS = statA.alloc(R, F), vS = statA.alloc(R, F);
  const yS = outA.alloc(R, N), hS = outA.alloc(R, N), iS = outA.alloc(R, F);
  const draw = (n: number, lo: number, hi: number) => randomReals(rng, p, n, lo, hi);
  const xs = Array.from({ length: R }, () => {
    const scale = rng.uniform(0.5, 4), shift = rng.uniform(-1, 1);
    return draw(N, shift - scale, shift + scale);
  });
  const gammas = Array.from({ length: R }, () => draw(F, 0.5, 2));
  const betas = Array.from({ length: R }, () => draw(F, -1, 1));
  const unitSq = Array.from({ length: R }, () => draw(1, 0.2, 50)[0]);
  const rms = Array.from({ length: R }, () => draw(F, -0.5, 0.5));
  const rvs = Array.from({ length: R }, () => draw(F, 0.05, 2));

  const inData = new Float64Array(inA.size).fill(NaN);
  place(inData, R, xS, (r) => xs[r]);
  const parData = new Float64Array(parA.size).fill(NaN);
  place(parData, R, gS, (r) => gammas[r]);
  place(parData, R, bS, (r) => betas[r]);
  place(parData, R, uS, (r) => [unitSq[r]]);
  const statData = new Float64Array(statA.size).fill(NaN);
  place(statData, R, mS, (r) => rms[r]);
  place(statData, R, vS, (r) => rvs[r]);
  const inBuf = uploadReals(gpu, p, inData), parBuf = uploadReals(gpu, p, parData);
  const statBuf = uploadReals(gpu, p, statData);
  const outBuf = realBuffer(gpu, p, outA.size);
  poison(gpu, outBuf);
  const sc = epsScalars(gpu, p, EPS.slice(0, R), EPS_NEXT.slice(0, R));
  const epsOf = c.epsField === "eps" ? sc.eps : sc.epsNext;

  const dispatch = batchNormForwardKernel(gpu, {
    precision: p,
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
    relu: c.relu,
    running: c.running && {
      mean: viewOf(statBuf, mS),
      var: viewOf(statBuf, vS),
      momentum: c.running.momentum,
      unit: c.running.unit ? viewOf(parBuf, uS) : undefined,
      update: c.running.update,
    },
  }, c.tiling);
  runDispatches(gpu, dispatch);
  const out = await readReals(gpu, p, outBuf);
  const stats = await readReals(gpu, p, statBuf);

  for (let r = 0; r < R; r++) {
    const g = c.affine ? gammas[r] : undefined, b = c.affine ? betas[r] : undefined;
    const unit = c.running?.unit ? Math.sqrt(unitSq[r]) : 1;
    const what = `${tag} run ${r}`;
    if (c.mode === "eval") {
      const y = batchNormEval(xs[r], rows, F, epsOf[r], rms[r], rvs[r], unit, g, b);
      close(p, take(out, yS, r), c.relu ? reluForward(y) : y, `${what} y`);
      assertClose(take(stats, mS, r), rms[r], 0, 0, `${what} running mean unchanged`);
      assertClose(take(stats, vS, r), rvs[r], 0, 0, `${what} running var unchanged`);
      continue;
    }
    const ref = (c.relu ? batchNormReluForward : batchNormForward)(xs[r], rows, F, epsOf[r], g, b);
    // xhat = (x - mean)/σ: an input's rounding moves it by ulp(x)/σ, however small xhat is (two
    // nearly equal rows give a tiny xhat from a large x).
    const cond = maxAbs(xs[r]) * maxAbs(ref.invStd);
    close(p, take(out, yS, r), ref.y, `${what} y`, cond * (g ? maxAbs(g) : 1));
    if (c.save) {
      close(p, take(out, hS, r), ref.xhat, `${what} xhat`, cond);
      close(p, take(out, iS, r), ref.invStd, `${what} invStd`);
    }
    const rm = Float64Array.from(rms[r]), rv = Float64Array.from(rvs[r]);
    if (c.running?.update) {
      updateRunningStats(rm, rv, ref, rows, heldReals(p, [c.running.momentum])[0], unit);
    }
    // (1 - m)·mean_old + m·mean may cancel; each term's rounding bounds the error.
    const terms = maxAbs(rms[r]) + maxAbs(xs[r]) / unit;
    close(p, take(stats, mS, r), rm, `${what} running mean`, terms);
    close(p, take(stats, vS, r), rv, `${what} running var`);
  }
  assertUntouched(out, R, [yS, ...(c.save ? [hS, iS] : [])], `${tag} activation buffer`);
}

// Whole below SPLIT_ROWS; split above (BatchNorm2d over N·H·W rows): 5000 rows end in a short
// chunk, SPLIT_ROWS + 1 in a chunk of one row.
const SHAPES: [number, number][] = [
  [2, 1],
  [37, 13],
  [128, 70],
  [300, 256],
  [5000, 11],
  [SPLIT_ROWS + 1, 5],
];

Deno.test("batchNormSplit: whole up to SPLIT_ROWS rows, split above; chunks leave a tail", () => {
  if (batchNormSplit(SPLIT_ROWS) || !batchNormSplit(SPLIT_ROWS + 1)) throw new Error("threshold");
  const chunk = DEFAULT_BATCHNORM_TILING.chunkRows;
  if (5000 % chunk === 0 || SPLIT_ROWS % chunk !== 0) throw new Error("tails untested");
});

for (const runs of [1, 3]) {
  gpuTest(
    `batchNormForwardKernel train (affine/plain, save, running update with/without unit), R=${runs}`,
    async (gpu) => {
      const rng = freshRng(`batchnorm forward train R=${runs}`);
      for (const [rows, features] of SHAPES) {
        const base = { precision: "f32" as const, runs, rows, features, mode: "train" as const };
        await checkForward(gpu, rng, { ...base, ...TRAINING });
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
        // Fused with the ReLU after it (the walker's BatchNorm -> ReLU).
        await checkForward(gpu, rng, { ...base, ...TRAINING, relu: true });
        await checkForward(gpu, rng, {
          ...base,
          affine: false,
          save: false,
          epsField: "eps_next",
          relu: true,
        });
      }
    },
  );

  gpuTest(
    `batchNormForwardKernel eval (running stats with/without unit), R=${runs}`,
    async (gpu) => {
      const rng = freshRng(`batchnorm forward eval R=${runs}`);
      for (const [rows, features] of SHAPES) {
        const base = {
          precision: "f32" as const,
          runs,
          rows,
          features,
          mode: "eval" as const,
          save: false,
        };
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
        await checkForward(gpu, rng, {
          ...base,
          affine: true,
          running: { update: false, unit: true, momentum: 0.1 },
          epsField: "eps",
          relu: true,
        });
      }
    },
  );

  gpuTest(`batchNormBackwardKernel (affine and plain), R=${runs}`, async (gpu) => {
    const rng = freshRng(`batchnorm backward R=${runs}`);
    for (const [rows, features] of SHAPES) {
      for (const affine of [true, false]) {
        for (const relu of [false, true]) {
          await checkBackward(gpu, rng, "f32", runs, rows, features, affine, relu);
        }
      }
    }
  });
}

/**
 * Tilings a tuner may pick, other than the default: smaller and larger chunks and workgroups,
 * and a chunk that is no power of two. No chunk divides a split shape's rows (2999 rows: 94
 * chunks of 32, 6 of 512, 3 of 1000, the last of 23, 439 and 999; SPLIT_ROWS + 1 rows: the last
 * of 1). The workgroup applies to the whole design too: 37 × 300 takes two to ten workgroups
 * (one thread per feature) at every workgroup size; 2999 × 29 several in the split design at
 * 32 and 128.
 */
const TILINGS: Partial<BatchNormTiling>[] = [
  { chunkRows: 32, workgroup: 32 },
  { chunkRows: 512, workgroup: 128 },
  { chunkRows: 1000, workgroup: 256 },
];
const TILED_SHAPES: [number, number][] = [[37, 300], [2999, 29], [SPLIT_ROWS + 1, 5]];

gpuTest(
  "batchNorm forward (train, eval) and backward with non-default tilings, R=2",
  async (gpu) => {
    const rng = freshRng("batchnorm tilings");
    for (const tiling of TILINGS) {
      for (const [rows, features] of TILED_SHAPES) {
        const base = { precision: "f32" as const, runs: 2, rows, features, tiling };
        await checkForward(gpu, rng, { ...base, ...TRAINING, relu: true });
        await checkForward(gpu, rng, {
          ...base,
          mode: "eval",
          affine: true,
          save: false,
          running: { update: false, unit: true, momentum: 0.1 },
          epsField: "eps_next",
        });
        await checkBackward(gpu, rng, "f32", 2, rows, features, true, true, tiling);
        await checkBackward(gpu, rng, "f32", 2, rows, features, false, false, tiling);
      }
    }
  },
);

Deno.test("batchNorm kernels refuse a bad tiling", () => {
  const gpu = dryGpu();
  const view = () => dryView(gpu);
  const common = { runs: 1, rows: 5000, features: 3 };
  const bad: Partial<BatchNormTiling>[] = [
    { workgroup: 0 },
    { workgroup: 48 },
    { workgroup: 512 },
    { workgroup: 2.5 },
    { chunkRows: 0 },
    { chunkRows: -128 },
    { chunkRows: 64.5 },
    { chunkRows: NaN },
    { chunkRows: Infinity },
    { chunkPositions: 64 } as Partial<BatchNormTiling>,
  ];
  for (const tiling of bad) {
    const shown = JSON.stringify({ ...DEFAULT_BATCHNORM_TILING, ...tiling });
    const message = `batchnorm: bad tiling ${shown}`;
    assertThrows(
      () =>
        batchNormForwardKernel(gpu, {
          ...common,
          mode: "train",
          x: view(),
          y: view(),
          scalars: view().buffer,
          epsField: "eps",
        }, tiling),
      message,
    );
    // The whole design (one thread per feature) takes the workgroup too, and refuses alike.
    for (const rows of [common.rows, 37]) {
      assertThrows(
        () =>
          batchNormBackwardKernel(gpu, {
            ...common,
            rows,
            dy: view(),
            xhat: view(),
            invStd: view(),
            dx: view(),
          }, tiling),
        message,
      );
    }
  }
});

async function checkBackward(
  gpu: Gpu,
  rng: Rng,
  p: Tested,
  R: number,
  rows: number,
  F: number,
  affine: boolean,
  relu = false,
  tiling?: Partial<BatchNormTiling>,
): Promise<void> {
  const N = rows * F;
  const tag = `backward ${p} R${R} ${rows}x${F} affine=${affine} relu=${relu}` +
    (tiling ? ` tiling=${JSON.stringify(tiling)}` : "");
  const inA = new Arena(), outA = new Arena();
  const dyS = inA.alloc(R, N), hS = inA.alloc(R, N), iS = inA.alloc(R, F), gS = inA.alloc(R, F);
  const yS = inA.alloc(R, N);
  const dxS = outA.alloc(R, N), dgS = outA.alloc(R, F), dbS = outA.alloc(R, F);
  // xhat and invStd as a forward would leave them (held in the precision), from random inputs.
  const caches: BatchNormCache[] = [];
  const dys: Float64Array[] = [], gammas: Float64Array[] = [], ys: Float64Array[] = [];
  for (let r = 0; r < R; r++) {
    // The fused output relu(y) masks dy; a shift makes the positive fraction differ per run.
    const beta = new Float64Array(F).fill(0.4 * r - 0.4);
    const ref = batchNormReluForward(
      randomReals(rng, p, N, -2, 2),
      rows,
      F,
      EPS[r],
      undefined,
      beta,
    );
    caches.push({ ...ref, xhat: heldReals(p, ref.xhat), invStd: heldReals(p, ref.invStd) });
    ys.push(heldReals(p, ref.y));
    dys.push(randomReals(rng, p, N));
    gammas.push(randomReals(rng, p, F, 0.5, 2));
  }
  const inData = new Float64Array(inA.size).fill(NaN);
  place(inData, R, dyS, (r) => dys[r]);
  place(inData, R, hS, (r) => caches[r].xhat);
  place(inData, R, iS, (r) => caches[r].invStd);
  place(inData, R, gS, (r) => gammas[r]);
  place(inData, R, yS, (r) => ys[r]);
  const inBuf = uploadReals(gpu, p, inData);
  const outBuf = realBuffer(gpu, p, outA.size);
  poison(gpu, outBuf);
  runDispatches(
    gpu,
    batchNormBackwardKernel(gpu, {
      precision: p,
      runs: R,
      rows,
      features: F,
      dy: viewOf(inBuf, dyS),
      xhat: viewOf(inBuf, hS),
      invStd: viewOf(inBuf, iS),
      gamma: affine ? viewOf(inBuf, gS) : undefined,
      y: relu ? viewOf(inBuf, yS) : undefined,
      dx: viewOf(outBuf, dxS),
      dgamma: affine ? viewOf(outBuf, dgS) : undefined,
      dbeta: affine ? viewOf(outBuf, dbS) : undefined,
    }, tiling),
  );
  const out = await readReals(gpu, p, outBuf);
  for (let r = 0; r < R; r++) {
    const gamma = affine ? gammas[r] : undefined;
    const ref = relu
      ? batchNormReluBackward(dys[r], ys[r], caches[r], rows, F, gamma)
      : batchNormBackward(dys[r], caches[r], rows, F, gamma);
    const gi = caches[r].invStd.map((v, j) => v * (affine ? gammas[r][j] : 1));
    closeDx(p, take(out, dxS, r), ref.dx, gi, dys[r], `${tag} run ${r} dx`);
    if (affine) {
      const dh = relu ? reluBackward(dys[r], ys[r]) : dys[r];
      const dhXhat = (k: number) => dh[k] * caches[r].xhat[k];
      closeSums(p, take(out, dgS, r), ref.dgamma, N, dhXhat, `${tag} run ${r} dgamma`);
      closeSums(p, take(out, dbS, r), ref.dbeta, N, (k) => dh[k], `${tag} run ${r} dbeta`);
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
    for (const [rows, F] of [[2, 1], [37, 13], [300, 256], [3000, 3]]) {
      const N = rows * F;
      const tag = `scale ${rows}x${F}`;
      const x0 = randomFloats(rng, N, -1, 1).map((v) => v + 0.3);
      const xs = scales.map((c) => x0.map((v) => v * c));
      const dy = Float32Array.from(randomFloats(rng, N));
      const gamma = Float32Array.from(randomFloats(rng, F, 0.5, 2));
      const beta = Float32Array.from(randomFloats(rng, F));
      const sc = epsScalars(gpu, "f32", scales.map((c) => 1e-5 * c * c), [0, 0, 0]);
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
        ...batchNormForwardKernel(gpu, {
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
        ...batchNormBackwardKernel(gpu, {
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
        close("f32", at(y, r, N), fwd.y, `${what} y`);
        close("f32", at(h, r, N), fwd.xhat, `${what} xhat`);
        close("f32", at(inv, r, F), fwd.invStd, `${what} invStd`);
        const gi = fwd.invStd.map((v, j) => v * gamma[j]);
        closeDx("f32", at(dx, r, N), bwd.dx, gi, dy, `${what} dx`);
        const dyXhat = (k: number) => dy[k] * fwd.xhat[k];
        closeSums("f32", at(dg, r, F), bwd.dgamma, N, dyXhat, `${what} dgamma`);
        closeSums("f32", at(db, r, F), bwd.dbeta, N, (k) => dy[k], `${what} dbeta`);
        // Scale invariance of the GPU result itself: c * dx(c x) = dx(x).
        const dx0 = at(dx, 0, N);
        const gi0 = at(inv, 0, F).map((v, j) => v * gamma[j]);
        const cdx = at(dx, r, N).map((d) => d * scales[r]);
        closeDx("f32", cdx, dx0, gi0, dy, `${what} c*dx vs run c=1`);
        closeSums("f32", at(dg, r, F), at(dg, 0, F), N, dyXhat, `${what} dgamma vs run c=1`, 2);
      }
    }
  },
);

/**
 * The df64 variants: those of the catalog (catalog.ts's BATCHNORM), whole (2 and 37 rows) and
 * split (5000 rows; 66000 rows: 516 chunks folded in R).
 */
const DF64_SHAPES: [number, number][] = [[2, 1], [37, 13], [5000, 3], [66000, 3]];
const DF64_FORWARD: Omit<ForwardCase, "precision" | "runs" | "rows" | "features">[] = [
  TRAINING,
  {
    mode: "train",
    affine: true,
    save: true,
    running: { update: true, unit: false, momentum: 0.3 },
    epsField: "eps",
  },
  { mode: "train", affine: false, save: true, epsField: "eps" },
  { mode: "train", affine: false, save: false, epsField: "eps_next" },
  { ...TRAINING, relu: true },
  {
    mode: "eval",
    affine: true,
    save: false,
    running: { update: false, unit: true, momentum: 0.1 },
    epsField: "eps_next",
    relu: true,
  },
  {
    mode: "eval",
    affine: true,
    save: false,
    running: { update: false, unit: true, momentum: 0.1 },
    epsField: "eps_next",
  },
  {
    mode: "eval",
    affine: false,
    save: false,
    running: { update: false, unit: false, momentum: 0.1 },
    epsField: "eps",
  },
];

gpuTest(
  "batchNormForwardKernel in df64: the catalog's variants, whole and split, R=3",
  async (gpu) => {
    const rng = freshRng("batchnorm forward df64");
    for (const [rows, features] of DF64_SHAPES) {
      for (const c of DF64_FORWARD) {
        await checkForward(gpu, rng, { ...c, precision: "df64", runs: 3, rows, features });
      }
    }
  },
);

gpuTest(
  "batchNormBackwardKernel in df64: affine and plain, ReLU-fused or not, R=3",
  async (gpu) => {
    const rng = freshRng("batchnorm backward df64");
    for (const [rows, features] of DF64_SHAPES) {
      for (const affine of [true, false]) {
        for (const relu of [false, true]) {
          await checkBackward(gpu, rng, "df64", 3, rows, features, affine, relu);
        }
      }
    }
  },
);

/**
 * The fused backward against central finite differences of the float64 reference forward
 * relu(BN(x)): loss = sum(w * relu(BN(x))), dx from the df64 kernels (whole and split). Elements
 * are sampled (skipping any whose ±h moves an output across the ReLU's kink); with h = 1e-6 the
 * difference quotient is accurate to ~1e-8.
 */
gpuTest("BatchNorm+ReLU backward (df64) = finite differences of the reference", async (gpu) => {
  const rng = freshRng("batchnorm relu finite differences");
  const p = "df64", eps = 1e-3;
  for (const [rows, F] of [[37, 5], [3000, 2]]) {
    const N = rows * F;
    const x = randomReals(rng, p, N, -2, 2), w = randomReals(rng, p, N);
    const gamma = randomReals(rng, p, F, 0.5, 2), beta = randomReals(rng, p, F, -0.5, 0.5);
    const loss = (xs: Float64Array) => {
      const y = batchNormReluForward(xs, rows, F, eps, gamma, beta).y;
      return y.reduce((acc, v, i) => acc + v * w[i], 0);
    };
    const fwd = batchNormReluForward(x, rows, F, eps, gamma, beta);
    const sc = epsScalars(gpu, p, [eps], [eps]);
    const buf = (values: ArrayLike<number>) => uploadReals(gpu, p, values);
    const view = (buffer: GPUBuffer): TensorView => ({ buffer, offset: 0, runStride: 0 });
    const [xB, wB, gB, bB] = [x, w, gamma, beta].map(buf);
    const yB = realBuffer(gpu, p, N), hB = realBuffer(gpu, p, N), iB = realBuffer(gpu, p, F);
    const dxB = realBuffer(gpu, p, N);
    for (const b of [yB, hB, iB, dxB]) poison(gpu, b);
    const common = { precision: p, runs: 1, rows, features: F, gamma: view(gB) } as const;
    runDispatches(gpu, [
      ...batchNormForwardKernel(gpu, {
        ...common,
        mode: "train",
        x: view(xB),
        y: view(yB),
        relu: true,
        xhat: view(hB),
        invStd: view(iB),
        beta: view(bB),
        scalars: sc.buffer,
        epsField: "eps",
      }),
      ...batchNormBackwardKernel(gpu, {
        ...common,
        dy: view(wB),
        xhat: view(hB),
        invStd: view(iB),
        y: view(yB),
        dx: view(dxB),
      }),
    ]);
    const dx = await readReals(gpu, p, dxB);
    const h = 1e-6;
    let checked = 0;
    for (let s = 0; s < 24; s++) {
      const k = Math.floor(rng.uniform(0, N));
      const plus = Float64Array.from(x), minus = Float64Array.from(x);
      plus[k] += h;
      minus[k] -= h;
      // Skip a sample where some output crosses the ReLU's kink between x - h and x + h.
      const [yp, ym] = [plus, minus].map((xs) => batchNormForward(xs, rows, F, eps, gamma, beta).y);
      if (yp.some((v, i) => (v > 0) !== (ym[i] > 0))) continue;
      checked++;
      const fd = (loss(plus) - loss(minus)) / (2 * h);
      const scale = Math.max(1, Math.abs(fd));
      if (!(Math.abs(dx[k] - fd) <= 1e-6 * scale)) {
        throw new Error(`${rows}x${F} dx[${k}] = ${dx[k]}, finite differences ${fd}`);
      }
    }
    if (checked < 12) throw new Error(`${rows}x${F}: only ${checked} samples off the kink`);
    // The fused output itself (relu applied in the kernel).
    close(p, (await readReals(gpu, p, yB)).subarray(0, N), fwd.y, `${rows}x${F} fused y`);
  }
});
