import { type Gpu, poison, readFloats, runDispatches, storageBuffer, uploadBuffer } from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";
import { softmaxCrossEntropy } from "../reference/ops.ts";
import type { Rng } from "../core/prng.ts";
import { assertClose, freshRng } from "../core/test_util.ts";
import { softmaxCrossEntropyKernel } from "./softmax_xent.ts";

/**
 * How the logits are drawn: spread U(-3, 3); confident = the label's logit 16 above the rest
 * (tiny loss, exercises the log1p and the label-gradient paths); ties = integers in {0, 1, 2}
 * (many equal maxima: the FIRST maximum is the argmax); large = U(-50, 50) + 1000 (stability).
 */
type Kind = "spread" | "confident" | "ties" | "large";

function drawLogits(rng: Rng, kind: Kind, labels: Uint32Array, classes: number): Float32Array {
  const rows = labels.length;
  const out = new Float32Array(rows * classes);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < classes; k++) {
      out[i * classes + k] = kind === "spread"
        ? rng.uniform(-3, 3)
        : kind === "confident"
        ? rng.uniform(-1, 1) + (k === labels[i] ? 16 : 0)
        : kind === "ties"
        ? rng.int(3)
        : rng.uniform(-50, 50) + 1000;
    }
  }
  return out;
}

/** Every element outside the runs' ranges must still be NaN. */
function assertUntouched(
  data: Float32Array,
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

/** Largest relative loss error seen, reported at the end of the run. */
let worstLossErr = 0;

async function check(gpu: Gpu, rng: Rng, runs: number, rows: number, classes: number, kind: Kind) {
  const tag = `softmax_xent R${runs} ${rows}x${classes} ${kind}`;
  const n = rows * classes;
  const labels = Uint32Array.from({ length: rows }, () => rng.int(classes));
  const logits = Array.from({ length: runs }, () => drawLogits(rng, kind, labels, classes));
  // Logits at an offset with padded run strides; dlogits and stats likewise, poisoned.
  const lOff = 3, lStride = n + 5, dOff = 1, dStride = n + 2, sOff = 2, sStride = 5;
  const lData = new Float32Array(lOff + runs * lStride).fill(NaN);
  logits.forEach((l, r) => lData.set(l, lOff + r * lStride));
  const lBuf = uploadBuffer(gpu, lData), labelBuf = uploadBuffer(gpu, labels);
  const dBuf = storageBuffer(gpu, dOff + runs * dStride);
  const sBuf = storageBuffer(gpu, sOff + runs * sStride);
  poison(gpu, dBuf);
  poison(gpu, sBuf);
  runDispatches(gpu, [softmaxCrossEntropyKernel(gpu, {
    runs,
    rows,
    classes,
    logits: { buffer: lBuf, offset: lOff, runStride: lStride },
    labels: labelBuf,
    dlogits: { buffer: dBuf, offset: dOff, runStride: dStride },
    stats: { buffer: sBuf, offset: sOff, runStride: sStride },
  })]);
  const dl = await readFloats(gpu, dBuf), stats = await readFloats(gpu, sBuf);
  for (let r = 0; r < runs; r++) {
    const ref = softmaxCrossEntropy(logits[r], labels, rows, classes);
    const what = `${tag} run ${r}`;
    // |dlogits| <= 1/rows; atol 1e-6 of that bounds the absolute error of tiny probabilities.
    assertClose(
      dl.subarray(dOff + r * dStride, dOff + r * dStride + n),
      ref.dlogits,
      1e-4,
      1e-6 / rows,
      `${what} dlogits`,
    );
    if (kind === "confident") {
      // The label's gradient -rest/(1 + rest)/rows is tiny here: relative tolerance alone, so
      // a p - 1 formed with cancellation (rest lost in 1 + rest) fails.
      const pick = (a: ArrayLike<number>, base: number) =>
        Array.from(labels, (c, i) => a[base + i * classes + c]);
      assertClose(
        pick(dl, dOff + r * dStride),
        pick(ref.dlogits, 0),
        1e-4,
        0,
        `${what} label dlogits`,
      );
    }
    const loss = stats[sOff + r * sStride], correct = stats[sOff + r * sStride + 1];
    worstLossErr = Math.max(worstLossErr, Math.abs(loss - ref.loss) / Math.max(ref.loss, 1e-30));
    // Per row the loss is float32 (a few ulps, exp's error growing with |logit - max|); the
    // sum over rows is a tree. 2e-6 relative (measured: < 7e-7) leaves room for the large-logit rows.
    assertClose([loss], [ref.loss], 2e-6, 1e-12, `${what} loss`);
    if (correct !== ref.correct) {
      throw new Error(`${what} correct ${correct}, expected ${ref.correct}`);
    }
  }
  assertUntouched(dl, runs, dOff, dStride, n, `${tag} dlogits`);
  assertUntouched(stats, runs, sOff, sStride, 2, `${tag} stats`);
}

const SHAPES: [number, number][] = [[1, 1], [1, 10], [37, 10], [257, 3], [300, 7], [1024, 100]];

for (const runs of [1, 3]) {
  gpuTest(`softmaxCrossEntropyKernel loss, count, dlogits, R=${runs}`, async (gpu) => {
    const rng = freshRng(`softmax_xent R=${runs}`);
    worstLossErr = 0;
    for (const [rows, classes] of SHAPES) {
      for (const kind of ["spread", "confident", "ties", "large"] as const) {
        await check(gpu, rng, runs, rows, classes, kind);
      }
    }
    console.error(
      `softmax_xent R=${runs}: worst relative loss error ${worstLossErr.toExponential(2)}`,
    );
  });
}

gpuTest("softmaxCrossEntropyKernel in place (dlogits over the logits), R=3", async (gpu) => {
  const rng = freshRng("softmax_xent in place");
  const runs = 3, rows = 300, classes = 10, n = rows * classes;
  const labels = Uint32Array.from({ length: rows }, () => rng.int(classes));
  const logits = Array.from({ length: runs }, () => drawLogits(rng, "spread", labels, classes));
  const buf = uploadBuffer(gpu, Float32Array.from(logits.flatMap((l) => [...l])));
  const sBuf = storageBuffer(gpu, 2 * runs);
  poison(gpu, sBuf);
  const v = { buffer: buf, offset: 0, runStride: n };
  runDispatches(gpu, [softmaxCrossEntropyKernel(gpu, {
    runs,
    rows,
    classes,
    logits: v,
    labels: uploadBuffer(gpu, labels),
    dlogits: v,
    stats: { buffer: sBuf, offset: 0, runStride: 2 },
  })]);
  const dl = await readFloats(gpu, buf, runs * n), stats = await readFloats(gpu, sBuf, 2 * runs);
  for (let r = 0; r < runs; r++) {
    const ref = softmaxCrossEntropy(logits[r], labels, rows, classes);
    assertClose(
      dl.subarray(r * n, (r + 1) * n),
      ref.dlogits,
      1e-4,
      1e-6 / rows,
      `run ${r} dlogits`,
    );
    assertClose([stats[2 * r]], [ref.loss], 2e-6, 0, `run ${r} loss`);
    if (stats[2 * r + 1] !== ref.correct) throw new Error(`run ${r} correct ${stats[2 * r + 1]}`);
  }
});
