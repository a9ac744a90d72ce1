import {
  type Gpu,
  poison,
  readReals,
  realBuffer,
  runDispatches,
  uploadBuffer,
  uploadReals,
  view,
} from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";
import { probeDistance } from "../reference/metrics.ts";
import type { Rng } from "../core/prng.ts";
import { assertClose, freshRng } from "../core/test_util.ts";
import { heldReals } from "./precision.ts";
import { PROBE_STATS, probeDistanceKernel } from "./probe_distance.ts";

/** The precisions tested here. */
type Tested = "f32" | "df64";

/**
 * Run 0: N(0, scale^2) logits; run r > 0: run 0 plus N(0, noise[r]^2), each rounded to what
 * `precision` holds.
 */
function makeLogits(
  rng: Rng,
  precision: Tested,
  n: number,
  noise: number[],
  scale: number,
): Float64Array[] {
  const a = heldReals(precision, Float64Array.from({ length: n }, () => scale * rng.normal()));
  return noise.map((s, r) =>
    r === 0 ? a : heldReals(precision, a.map((v) => v + s * rng.normal()))
  );
}

/**
 * Runs the kernel on the runs' rows×classes `logits` (stored at an offset with a padded run
 * stride) into a poisoned buffer at another offset and stride; checks that nothing outside the
 * records was written and returns each run's record.
 */
async function measure(
  gpu: Gpu,
  precision: Tested,
  logits: Float64Array[],
  labels: Uint32Array,
  classes: number,
  correct = true,
): Promise<ArrayLike<number>[]> {
  const runs = logits.length, rows = labels.length, n = rows * classes;
  const off = 5, stride = n + 3;
  const l = new Float64Array(off + runs * stride);
  logits.forEach((lr, r) => l.set(lr, off + r * stride));
  const outOff = 3, outStride = PROBE_STATS.words + 1;
  const out = realBuffer(gpu, precision, outOff + runs * outStride);
  poison(gpu, out);
  runDispatches(gpu, [
    probeDistanceKernel(gpu, {
      precision,
      runs,
      rows,
      classes,
      logits: view(uploadReals(gpu, precision, l), stride, off),
      labels: uploadBuffer(gpu, labels),
      out: view(out, outStride, outOff),
      correct,
    }),
  ]);
  const got = await readReals(gpu, precision, out);
  for (let k = 0; k < outOff; k++) {
    if (!Number.isNaN(got[k])) throw new Error(`wrote before out.offset at ${k}`);
  }
  for (let r = 0; r < runs; r++) {
    if (!Number.isNaN(got[outOff + r * outStride + PROBE_STATS.words])) {
      throw new Error(`wrote past run ${r}'s record`);
    }
  }
  return logits.map((_, r) => got.subarray(outOff + r * outStride, outOff + (r + 1) * outStride));
}

/**
 * Tolerances against the float64 reference (reference/metrics.ts), as [rtol, atol]:
 * - f32, as measured before: maxProb (the brief asked 1e-6 absolute): series path accurate
 *   relative to the distance (~5e-7); direct path: f32 exp's relative error (~6e-8 |z|) times
 *   p, amplified where p0 and pr nearly cancel: measured up to 2.4e-10 absolute at maxProb
 *   6e-6. KL: measured <= 3e-5 relative (a common shift of l0 - lr costs the f32 rounding of
 *   d); sums of squares ~1e-7 relative.
 * - df64: 1e-12 relative, the kernel's own error being ~2^-47 times the log-ratios its
 *   formulas add (measured up to 1.1e-13 relative at logit differences ~150, ~5e-15 below 10).
 *   The atol is the float64 reference's own error where it, not the kernel, cancels: its
 *   p = exp(log p) are each off by ~2^-53 (2 + log C) (p |log p| <= 1/e), so their difference
 *   by up to ~2e-15 absolute (measured 8e-16 at maxProb 2e-4), and its
 *   KL = Σ p0 (log p0 - log pr) by ~2^-53 (4 log C + KL) per row, under 1e-15 C. diff2 and
 *   norm2 are sums of squares of exact differences: 1e-12. Worst over 10 seeds: 0.11 of the
 *   tolerance.
 * Counts are exact in both: argmax of the same values, compared exactly.
 */
const TOLERANCE: Record<Tested, {
  maxProb: [number, number];
  kl: (classes: number) => [number, number];
  squares: number;
}> = {
  f32: { maxProb: [2e-5, 2e-9], kl: (c) => [1e-4, 1e-15 * c], squares: 1e-5 },
  df64: { maxProb: [1e-12, 2e-15], kl: (c) => [1e-12, 1e-15 * c], squares: 1e-12 },
};

/**
 * Measures the runs' `logits` and checks every run's record against reference/metrics.ts's
 * float64 {@link probeDistance} (`tag` names the case; `log` prints the errors).
 */
async function checkLogits(
  gpu: Gpu,
  precision: Tested,
  logits: Float64Array[],
  labels: Uint32Array,
  classes: number,
  tag: (r: number) => string,
  log: boolean,
): Promise<void> {
  const stats = await measure(gpu, precision, logits, labels, classes);
  const tol = TOLERANCE[precision], rows = labels.length;
  const a = logits[0];
  stats.forEach((g, r) => {
    const what = `${precision} rows=${rows} classes=${classes} ${tag(r)}`;
    const lr = logits[r];
    const ref = probeDistance(a, lr, labels, rows, classes);
    let diff2 = 0, norm2 = 0;
    for (let i = 0; i < a.length; i++) (diff2 += (lr[i] - a[i]) ** 2), (norm2 += a[i] ** 2);
    const kl = g[PROBE_STATS.kl] / rows, maxProb = g[PROBE_STATS.maxProb];
    if (log) {
      const err = (x: number, e: number) => Math.abs(x - e).toExponential(1);
      console.error(
        `  ${what}: maxProb ${maxProb.toExponential(3)} (err ${err(maxProb, ref.maxProb)}), ` +
          `kl ${kl.toExponential(3)} (ref ${ref.kl.toExponential(3)}, err ${err(kl, ref.kl)})`,
      );
    }
    assertClose([maxProb], [ref.maxProb], ...tol.maxProb, `${what} maxProb`);
    assertClose([g[PROBE_STATS.diff2]], [diff2], tol.squares, 1e-30, `${what} diff2`);
    assertClose([g[PROBE_STATS.norm2]], [norm2], tol.squares, 0, `${what} norm2`);
    if (r > 0) {
      assertClose(
        [Math.sqrt(g[PROBE_STATS.diff2] / g[PROBE_STATS.norm2])],
        [ref.relL2],
        tol.squares,
        0,
        `${what} relL2`,
      );
    }
    assertClose([g[PROBE_STATS.agree] / rows], [ref.agree], 0, 0, `${what} agree`);
    assertClose([g[PROBE_STATS.correct] / rows], [ref.accuracy], 0, 0, `${what} accuracy`);
    assertClose([kl], [ref.kl], ...tol.kl(classes), `${what} kl`);
  });
}

/** {@link checkLogits} on {@link makeLogits}'s runs and random labels. */
function check(
  gpu: Gpu,
  rng: Rng,
  precision: Tested,
  rows: number,
  classes: number,
  noise: number[],
  scale: number,
  log = true,
): Promise<void> {
  const logits = makeLogits(rng, precision, rows * classes, noise, scale);
  const labels = Uint32Array.from({ length: rows }, () => rng.int(classes));
  const tag = (r: number) => `scale=${scale} run ${r} (noise ${noise[r]})`;
  return checkLogits(gpu, precision, logits, labels, classes, tag, log);
}

gpuTest("probeDistanceKernel: R=1 (run 0 against itself)", async (gpu) => {
  const rng = freshRng("probe R=1");
  for (const [rows, classes] of [[1, 2], [37, 10], [512, 37]]) {
    await check(gpu, rng, "f32", rows, classes, [0], 3);
  }
});

gpuTest(
  "probeDistanceKernel: R=3, small and large perturbations (maxProb 1e-7..0.5)",
  async (gpu) => {
    const rng = freshRng("probe R=3");
    for (const [rows, classes] of [[1, 2], [37, 10], [512, 37], [300, 10]]) {
      await check(gpu, rng, "f32", rows, classes, [0, 1e-6, 1], 3);
    }
  },
);

gpuTest(
  "probeDistanceKernel without `correct`: the other terms alike, that word untouched",
  async (gpu) => {
    const rng = freshRng("probe without correct");
    const logits = makeLogits(rng, "f32", 37 * 10, [0, 1e-6, 1], 3);
    const labels = Uint32Array.from({ length: 37 }, () => rng.int(10));
    const all = await measure(gpu, "f32", logits, labels, 10);
    const some = await measure(gpu, "f32", logits, labels, 10, false);
    all.forEach((rec, r) => {
      for (let k = 0; k < PROBE_STATS.words; k++) {
        const want = k === PROBE_STATS.correct ? NaN : rec[k];
        if (!Object.is(some[r][k], want)) throw new Error(`run ${r} word ${k}: ${some[r][k]}`);
      }
    });
  },
);

gpuTest("probeDistanceKernel: probabilities that underflow f32 keep KL finite", async (gpu) => {
  const rng = freshRng("probe underflow");
  // logits ~ N(0, 60^2): most probabilities are below 1e-38 in f32
  await check(gpu, rng, "f32", 64, 10, [0, 1e-4, 3, 50], 60);
});

gpuTest(
  "probeDistanceKernel: saturated rows (p_max near 1) keep maxProb and KL accurate",
  async (gpu) => {
    const rng = freshRng("probe saturated");
    // logits ~ N(0, 10^2): the top probability is often 1 - 1e-4 or closer
    for (const classes of [2, 10]) {
      await check(gpu, rng, "f32", 200, classes, [0, 1e-6, 0.3, 4], 10);
    }
    // single rows, so the max is taken over one (usually saturated) row's classes
    for (let k = 0; k < 40; k++) {
      await check(gpu, rng, "f32", 1, 2 + (k % 3), [0, 1e-5, 0.3], 10, false);
    }
  },
);

gpuTest(
  "probeDistanceKernel in df64: every path (small and large perturbations, underflow, saturation) to 1e-12",
  async (gpu) => {
    const rng = freshRng("probe df64");
    // The regimes of the float32 tests, smaller: centred path with and without series, y on
    // both sides of 1, the overflow-safe direct path (scale 60), saturated rows.
    await check(gpu, rng, "df64", 37, 10, [0, 1e-3, 1], 3);
    await check(gpu, rng, "df64", 64, 10, [0, 1e-4, 3, 50], 60);
    await check(gpu, rng, "df64", 100, 10, [0, 1e-3, 0.3, 4], 10);
    for (let k = 0; k < 6; k++) {
      await check(gpu, rng, "df64", 1, 2 + (k % 3), [0, 1e-3, 0.3], 10, false);
    }
    // The direct path at a common argmax (random logits rarely reach it): run 0 splits its
    // mass between two classes that run 1 sets 150 apart (the first maximum is the argmax of
    // both), so p0 e^{-d'} would overflow; the third class is perturbed at random.
    const given = [[0, 0, -1, 2, 2, -3], [0, -150, -1, 2, -148, -3.5]].map((v) =>
      heldReals("df64", Float64Array.from(v, (x, i) => x + (i % 3 === 2 ? 0.1 * rng.normal() : 0)))
    );
    const tag = (r: number) => `common argmax, direct path, run ${r}`;
    await checkLogits(gpu, "df64", given, Uint32Array.of(0, 1), 3, tag, true);
  },
);

/**
 * maxProb and Σ_rows KL of two runs whose logits differ by a tiny d = l0 - lr (|d| <~ 1e-8),
 * where reference/metrics.ts's p0 - pr and Σ p0 (log p0 - log pr) are lost to its rounding
 * (~1e-16 against distances of ~1e-12 and ~1e-22). With p0 = softmax(l0) and d' = d - Σ p0 d
 * (centred), log pr - log p0 = t = -d' - K exactly, where K = log Σ p0 e^{-d'} = v/2 - κ3/6 +
 * O(d⁴) (v = Σ p0 d'², κ3 = Σ p0 d'³: the cumulants of the centred d'); then pr - p0 =
 * p0 expm1(t) and KL = -Σ p0 t = K, both to relative O(d²) ~ 1e-20, each a sum without
 * cancellation of float64 terms good to ~1e-16 relative (d itself is exact: l0 and lr are
 * float64 values within a factor 2).
 */
function tinyDistance(
  l0: Float64Array,
  lr: Float64Array,
  classes: number,
): { maxProb: number; kl: number } {
  let maxProb = 0, kl = 0;
  for (let i = 0; i < l0.length; i += classes) {
    const a = l0.subarray(i, i + classes), d = a.map((v, c) => v - lr[i + c]);
    const m = Math.max(...a);
    const q = a.map((v) => Math.exp(v - m)), s = q.reduce((x, y) => x + y);
    const p0 = q.map((v) => v / s);
    const dbar = p0.reduce((x, p, c) => x + p * d[c], 0);
    const dc = d.map((v) => v - dbar);
    const v = p0.reduce((x, p, c) => x + p * dc[c] ** 2, 0);
    const k3 = p0.reduce((x, p, c) => x + p * dc[c] ** 3, 0);
    const K = v / 2 - k3 / 6;
    p0.forEach((p, c) => (maxProb = Math.max(maxProb, Math.abs(p * Math.expm1(-dc[c] - K)))));
    kl += K;
  }
  return { maxProb, kl };
}

gpuTest(
  "probeDistanceKernel in df64: logits 1e-11 apart (relative) give distances to 1e-12 relative",
  async (gpu) => {
    const rng = freshRng("probe df64 tiny");
    // Noise 1e-11 and 1e-9 of the logits' scale (at scale 3: maxProb ~2e-11, KL ~2e-22 a row);
    // scale 10 for rows near saturation. The kernel's error is ~2^-47 relative to the
    // distance itself (the centred formulas: d' is exact to ~1e-14 of its size, and so are
    // every series term and sum after it): 1e-12 relative against the cumulant reference
    // (measured up to 1.3e-14 over 6 seeds).
    for (const [rows, classes, scale] of [[64, 10, 3], [20, 37, 3], [32, 10, 10]]) {
      const noise = [0, 1e-11, 1e-9].map((n) => n * scale);
      const logits = makeLogits(rng, "df64", rows * classes, noise, scale);
      const labels = Uint32Array.from({ length: rows }, () => rng.int(classes));
      const stats = await measure(gpu, "df64", logits, labels, classes);
      stats.forEach((g, r) => {
        const what = `rows=${rows} classes=${classes} scale=${scale} run ${r} (noise ${noise[r]})`;
        const ref = tinyDistance(logits[0], logits[r], classes);
        const maxProb = g[PROBE_STATS.maxProb], kl = g[PROBE_STATS.kl];
        const rel = (x: number, e: number) => (e ? Math.abs(x / e - 1) : Math.abs(x));
        console.error(
          `  ${what}: maxProb ${maxProb.toExponential(3)} (rel err ${
            rel(maxProb, ref.maxProb).toExponential(1)
          }), kl ${kl.toExponential(3)} (rel err ${rel(kl, ref.kl).toExponential(1)})`,
        );
        // run 0 against itself: exactly 0 (rtol against 0 admits only 0)
        assertClose([maxProb], [ref.maxProb], 1e-12, 0, `${what} maxProb`);
        assertClose([kl], [ref.kl], 1e-12, 0, `${what} kl`);
        let diff2 = 0, norm2 = 0;
        logits[0].forEach((a, i) => ((diff2 += (a - logits[r][i]) ** 2), (norm2 += a * a)));
        assertClose([g[PROBE_STATS.diff2], g[PROBE_STATS.norm2]], [diff2, norm2], 1e-12, 0, what);
        assertClose([g[PROBE_STATS.agree]], [rows], 0, 0, `${what} agree`);
      });
    }
  },
);
