import {
  type Gpu,
  poison,
  readReals,
  realBuffer,
  runDispatches,
  uploadBuffer,
  uploadReals,
} from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";
import { heldReals, randomReals, type Reals } from "./precision.ts";
import { softmaxCrossEntropy } from "../reference/ops.ts";
import type { Rng } from "../core/prng.ts";
import { assertClose, freshRng } from "../core/test_util.ts";
import { softmaxCrossEntropyKernel } from "./softmax_xent.ts";

/** The precisions tested here. */
type Tested = "f32" | "df64";

/**
 * How the logits are drawn: spread U(-3, 3); confident = the label's logit 16 above the rest
 * (tiny loss, exercises the log1p and the label-gradient paths); ties = integers in {0, 1, 2}
 * (many equal maxima: the FIRST maximum is the argmax); large = U(-50, 50) + 1000 (stability).
 * In df64 ties also get 0, 1 or 2 × 2^-30, below the ulp of hi at 1 and 2, so only the lo
 * parts tell some maxima apart (exact comparisons).
 */
type Kind = "spread" | "confident" | "ties" | "large";

/** Logits [rows, classes] of `kind`, exact in `precision` (the reference sees the GPU's inputs). */
function drawLogits(
  rng: Rng,
  precision: Tested,
  kind: Kind,
  labels: Uint32Array,
  classes: number,
): Float64Array {
  const rows = labels.length;
  const uniform = (lo: number, hi: number) => randomReals(rng, precision, 1, lo, hi)[0];
  const lo = precision === "f32" ? () => 0 : () => rng.int(3) * 2 ** -30;
  const out = new Float64Array(rows * classes);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < classes; k++) {
      out[i * classes + k] = kind === "spread"
        ? uniform(-3, 3)
        : kind === "confident"
        ? uniform(-1, 1) + (k === labels[i] ? 16 : 0)
        : kind === "ties"
        ? rng.int(3) + lo()
        : uniform(-50, 50) + 1000;
    }
  }
  // The offsets' sums need rounding back to the precision.
  return heldReals(precision, out);
}

/**
 * The reference's loss and dlogits, with the loss and each row's label gradient recomputed in
 * float64 without the reference's two cancellations: its log(sum) and, at the argmax, p - 1
 * round sum = 1 + rest to 1.1e-16 absolute, a relative 1e-10 of a confident row's rest ~1e-6
 * (coarser than df64). Here log1p(rest) and ((e - 1) - rest) / (1 + rest), the forms the kernel
 * evaluates, keep float64's relative accuracy.
 */
function expected(
  logits: Float64Array,
  labels: Uint32Array,
  rows: number,
  classes: number,
): { loss: number; correct: number; dlogits: Float64Array } {
  const ref = softmaxCrossEntropy(logits, labels, rows, classes);
  let loss = 0;
  for (let i = 0; i < rows; i++) {
    const row = logits.subarray(i * classes, (i + 1) * classes);
    let arg = 0;
    for (let k = 1; k < classes; k++) if (row[k] > row[arg]) arg = k;
    let rest = 0;
    for (let k = 0; k < classes; k++) if (k !== arg) rest += Math.exp(row[k] - row[arg]);
    const label = labels[i], e = label === arg ? 1 : Math.exp(row[label] - row[arg]);
    loss += Math.log1p(rest) + (row[arg] - row[label]);
    ref.dlogits[i * classes + label] = (e - 1 - rest) / (1 + rest) / rows;
  }
  return { loss: loss / rows, correct: ref.correct, dlogits: ref.dlogits };
}

/**
 * Tolerances against {@link expected}. float32: dlogits rtol 1e-4 with atol 1e-6 / rows (|dlogits|
 * <= 1/rows: bounds the absolute error of tiny probabilities); loss 2e-6 relative (per row a few
 * ulps, exp's error growing with |logit - max|; the row sum is a tree; measured < 7e-7).
 * df64: each value is a handful of df64 operations (~1e-14 relative each, df64.ts), but exp's
 * argument l - max is rounded to df64's 48 bits, an absolute |l - max|·2^-48 that exp turns
 * into a relative error of that size: ~6e-14 for the confident rows' gaps of ~17 (measured
 * worst 1.2e-13), so rtol 1e-12 (gaps up to ~280 would fit; the large kind's 1000-sized logits
 * have coarser lo parts and their differences come out exact). The loss sums non-negative terms
 * (log1p(rest), max - l_label) over a tree of log2(rows) levels, no cancellation (measured
 * worst 1.1e-14): 1e-12. dlogits atol 2^-100: below that magnitude df64's error is absolute,
 * ~2^-149 (df64.ts), and the large kind's exp(l - max) for gaps of up to 100 lies there.
 */
const TOL: Record<Tested, { dRtol: number; dAtol: (rows: number) => number; lossRtol: number }> = {
  f32: { dRtol: 1e-4, dAtol: (rows) => 1e-6 / rows, lossRtol: 2e-6 },
  df64: { dRtol: 1e-12, dAtol: () => 2 ** -100, lossRtol: 1e-12 },
};

/** Every element outside the runs' ranges must still be NaN. */
function assertUntouched(
  data: Reals,
  runs: number,
  off: number,
  stride: number,
  n: number,
  what: string,
) {
  for (let i = 0; i < data.length; i++) {
    const k = i - off, r = Math.floor(k / stride);
    if (!(k >= 0 && r < runs && k - r * stride < n) && !Number.isNaN(data[i])) {
      throw new Error(`${what}: element ${i} written (${data[i]})`);
    }
  }
}

/** Largest relative loss and dlogits errors seen, reported at the end of each test. */
let worst = { loss: 0, dlogits: 0 };

/** Largest |a - e| / |e| over the elements with |e| above `floor`. */
function relErr(a: ArrayLike<number>, e: ArrayLike<number>, floor: number): number {
  let m = 0;
  for (let i = 0; i < e.length; i++) {
    if (Math.abs(e[i]) > floor) m = Math.max(m, Math.abs(a[i] - e[i]) / Math.abs(e[i]));
  }
  return m;
}

async function check(
  gpu: Gpu,
  rng: Rng,
  precision: Tested,
  runs: number,
  rows: number,
  classes: number,
  kind: Kind,
) {
  const tag = `softmax_xent ${precision} R${runs} ${rows}x${classes} ${kind}`;
  const tol = TOL[precision];
  const n = rows * classes;
  const labels = Uint32Array.from({ length: rows }, () => rng.int(classes));
  const logits = Array.from(
    { length: runs },
    () => drawLogits(rng, precision, kind, labels, classes),
  );
  // Logits at an offset with padded run strides; dlogits and stats likewise, poisoned.
  const lOff = 3, lStride = n + 5, dOff = 1, dStride = n + 2, sOff = 2, sStride = 5;
  const lData = new Float64Array(lOff + runs * lStride).fill(NaN);
  logits.forEach((l, r) => lData.set(l, lOff + r * lStride));
  const lBuf = uploadReals(gpu, precision, lData), labelBuf = uploadBuffer(gpu, labels);
  const dBuf = realBuffer(gpu, precision, dOff + runs * dStride);
  const sBuf = realBuffer(gpu, precision, sOff + runs * sStride);
  poison(gpu, dBuf);
  poison(gpu, sBuf);
  runDispatches(gpu, [softmaxCrossEntropyKernel(gpu, {
    precision,
    runs,
    rows,
    classes,
    logits: { buffer: lBuf, offset: lOff, runStride: lStride },
    labels: labelBuf,
    dlogits: { buffer: dBuf, offset: dOff, runStride: dStride },
    stats: { buffer: sBuf, offset: sOff, runStride: sStride },
  })]);
  const dl = await readReals(gpu, precision, dBuf, dOff + runs * dStride);
  const stats = await readReals(gpu, precision, sBuf, sOff + runs * sStride);
  for (let r = 0; r < runs; r++) {
    const ref = expected(logits[r], labels, rows, classes);
    const what = `${tag} run ${r}`;
    const got = dl.subarray(dOff + r * dStride, dOff + r * dStride + n);
    assertClose(got, ref.dlogits, tol.dRtol, tol.dAtol(rows), `${what} dlogits`);
    worst.dlogits = Math.max(worst.dlogits, relErr(got, ref.dlogits, tol.dAtol(rows)));
    if (kind === "confident") {
      // The label's gradient -rest/(1 + rest)/rows is tiny here: relative tolerance alone, so
      // a p - 1 formed with cancellation (rest lost in 1 + rest) fails.
      const pick = (a: ArrayLike<number>) => Array.from(labels, (c, i) => a[i * classes + c]);
      assertClose(pick(got), pick(ref.dlogits), tol.dRtol, 0, `${what} label dlogits`);
    }
    const loss = stats[sOff + r * sStride], correct = stats[sOff + r * sStride + 1];
    worst.loss = Math.max(worst.loss, relErr([loss], [ref.loss], 0));
    // The atol only lets an exact 0 match the one-class rows' zero loss.
    assertClose([loss], [ref.loss], tol.lossRtol, 1e-300, `${what} loss`);
    if (correct !== ref.correct) {
      throw new Error(`${what} correct ${correct}, expected ${ref.correct}`);
    }
  }
  assertUntouched(dl, runs, dOff, dStride, n, `${tag} dlogits`);
  assertUntouched(stats, runs, sOff, sStride, 2, `${tag} stats`);
}

const KINDS: Kind[] = ["spread", "confident", "ties", "large"];
const SHAPES: [number, number][] = [[1, 1], [1, 10], [37, 10], [257, 3], [300, 7], [1024, 100]];

/** Reports the worst relative errors of a test. */
function report(what: string) {
  console.error(
    `${what}: worst relative loss error ${worst.loss.toExponential(2)}, ` +
      `dlogits ${worst.dlogits.toExponential(2)}`,
  );
}

for (const runs of [1, 3]) {
  gpuTest(`softmaxCrossEntropyKernel loss, count, dlogits, R=${runs}`, async (gpu) => {
    const rng = freshRng(`softmax_xent R=${runs}`);
    worst = { loss: 0, dlogits: 0 };
    for (const [rows, classes] of SHAPES) {
      for (const kind of KINDS) await check(gpu, rng, "f32", runs, rows, classes, kind);
    }
    report(`softmax_xent R=${runs}`);
  });
}

gpuTest("softmaxCrossEntropyKernel in df64: loss, count, dlogits, R=2", async (gpu) => {
  const rng = freshRng("softmax_xent df64");
  worst = { loss: 0, dlogits: 0 };
  // Small shapes; 300 rows give threads a second row.
  for (const [rows, classes] of SHAPES.slice(0, -1)) {
    for (const kind of KINDS) await check(gpu, rng, "df64", 2, rows, classes, kind);
  }
  report("softmax_xent df64");
});

for (const precision of ["f32", "df64"] as const) {
  gpuTest(
    `softmaxCrossEntropyKernel in place (dlogits over the logits), ${precision}, R=3`,
    async (gpu) => {
      const rng = freshRng(`softmax_xent in place ${precision}`);
      const tol = TOL[precision];
      const runs = 3, rows = 300, classes = 10, n = rows * classes;
      const labels = Uint32Array.from({ length: rows }, () => rng.int(classes));
      const logits = Array.from(
        { length: runs },
        () => drawLogits(rng, precision, "spread", labels, classes),
      );
      const buf = uploadReals(gpu, precision, logits.flatMap((l) => [...l]));
      const sBuf = realBuffer(gpu, precision, 2 * runs);
      poison(gpu, sBuf);
      const v = { buffer: buf, offset: 0, runStride: n };
      runDispatches(gpu, [softmaxCrossEntropyKernel(gpu, {
        precision,
        runs,
        rows,
        classes,
        logits: v,
        labels: uploadBuffer(gpu, labels),
        dlogits: v,
        stats: { buffer: sBuf, offset: 0, runStride: 2 },
      })]);
      const dl = await readReals(gpu, precision, buf, runs * n);
      const stats = await readReals(gpu, precision, sBuf, 2 * runs);
      for (let r = 0; r < runs; r++) {
        const ref = expected(logits[r], labels, rows, classes);
        assertClose(
          dl.subarray(r * n, (r + 1) * n),
          ref.dlogits,
          tol.dRtol,
          tol.dAtol(rows),
          `run ${r} dlogits`,
        );
        assertClose([stats[2 * r]], [ref.loss], tol.lossRtol, 0, `run ${r} loss`);
        if (stats[2 * r + 1] !== ref.correct) {
          throw new Error(`run ${r} correct ${stats[2 * r + 1]}`);
        }
      }
    },
  );
}
