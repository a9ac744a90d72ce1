/**
 * The df64 GPU trainer against the float64 reference trainer: same float32 initial weights,
 * same batches, same plan, for 50 steps on a small MLP, CNN and PreResNet-8 with runs A, B and
 * A2 (per-step perturbation: the rescale-free paths of every kernel plus the perturb pass).
 * Losses every metered step and at the end every weight, momentum buffer and running statistic
 * (each tensor's error relative to its own largest element) must agree to 1e-10: double-float
 * carries ~48 bits, and 50 steps of a BatchNorm network amplify rounding by far less than the
 * 2^-48 → 1e-10 margin (float32 misses it by five orders of magnitude; see trainer_test.ts's
 * tolerances).
 */

import { gpuTest } from "../shaders/test_gpu.ts";
import { probeDistance } from "../reference/metrics.ts";
import type { Reals } from "../shaders/precision.ts";
import { CONV_MODELS, MLP, modelTested, NORM_MODELS, setupTrainers } from "./test_trainers.ts";

const STEPS = 50;
/** Relative agreement required of df64 against float64 (the bar). */
const RTOL = 1e-10;

/** |a - b| / |b|, the loss's relative error (NaN counts as infinite). */
function relErr(a: number, b: number): number {
  const e = Math.abs(a - b) / Math.abs(b);
  return Number.isNaN(e) ? Infinity : e;
}

/**
 * The worst, over the tensors `ranges` ([offset, size] within one run), of max |a - b| over
 * the tensor divided by max |b| over it: each tensor's error relative to its own scale, since
 * elements passing near zero carry the absolute rounding of the terms that formed them.
 */
function tensorErr(a: ArrayLike<number>, b: ArrayLike<number>, ranges: [number, number][]): number {
  let worst = 0;
  for (const [offset, size] of ranges) {
    let diff = 0, scale = 0;
    for (let i = offset; i < offset + size; i++) {
      diff = Math.max(diff, Number.isNaN(a[i]) ? Infinity : Math.abs(a[i] - b[i]));
      scale = Math.max(scale, Math.abs(b[i]));
    }
    // An all-zero tensor (an O bias before any gradient reached it) must be zero.
    worst = Math.max(worst, scale === 0 ? diff : diff / scale);
  }
  return worst;
}

for (const model of [MLP, ...CONV_MODELS, ...NORM_MODELS]) {
  gpuTest(
    `df64 GPU trainer agrees with the float64 reference to 1e-10 over ${STEPS} steps (${model.name}; A, B, A2)`,
    async (gpu) => {
      const { layout, gpuPlan, trainer, ref, batch, probe } = await setupTrainers(gpu, {
        runs: ["A", "B", "A2"],
        steps: STEPS,
        runningStats: "weightnorm",
        model,
        precision: "df64",
      });
      const classes = layout.classes, runs = 3, probeRows = probe.rows, rows = model.rows;
      let worstLoss = 0, worstProb = 0, worstAB = 0;
      for (let t = 0; t < STEPS; t++) {
        const { x, y } = batch();
        const metered = t % 5 === 4 || t === STEPS - 1;
        const { metrics } = await trainer.submitStep(x, y, rows, gpuPlan.next(), {
          meter: metered,
          probe: metered,
          evalMode: metered,
        });
        const r64 = ref.step(x, y, rows);
        if (!metered) continue;
        const m = trainer.record.reader(await metrics!);
        for (let r = 0; r < runs; r++) {
          const loss = m(r, "loss");
          worstLoss = Math.max(worstLoss, relErr(loss, r64.loss[r]));
          if (m(r, "correct") !== r64.correct[r]) {
            throw new Error(
              `step ${t} run ${r}: ${m(r, "correct")} correct, ` +
                `reference ${r64.correct[r]}`,
            );
          }
        }
        for (const mode of ["train", "eval"] as const) {
          const logits = ref.probeLogits(probe.x, probeRows, mode);
          for (let r = 1; r < runs; r++) {
            const d = probeDistance(logits[0], logits[r], probe.y, probeRows, classes);
            const got = m(r, `${mode === "train" ? "probe" : "eval"}.maxprob`);
            // A–A2 distances are O(1e-7..1): relative; A–B is rounding-level: absolute.
            worstProb = Math.max(worstProb, Math.abs(got - d.maxProb) / Math.max(d.maxProb, 1e-6));
            if (r === 1) worstAB = Math.max(worstAB, got);
          }
        }
      }
      const state = await trainer.readState();
      const P = layout.size, N = layout.statsSize;
      const errs = { params: 0, bufs: 0, mean: 0, var: 0 };
      const tensors = layout.tensors.map((t): [number, number] => [t.offset, t.size]);
      const stats = layout.batchNorms.map((bn): [number, number] => [bn.offset, bn.features]);
      for (let r = 0; r < runs; r++) {
        const slice = (a: Reals, n: number) => a.subarray(r * n, (r + 1) * n);
        const worst = (
          key: keyof typeof errs,
          a: Reals,
          n: number,
          b: Float64Array,
          ranges: [number, number][],
        ) => (errs[key] = Math.max(errs[key], tensorErr(slice(a, n), b, ranges)));
        worst("params", state.params, P, ref.params[r], tensors);
        worst("bufs", state.bufs, P, ref.bufs[r], tensors);
        worst("mean", state.runningMean, N, ref.stats[r].mean, stats);
        worst("var", state.runningVar, N, ref.stats[r].variance, stats);
      }
      console.error(
        `${model.name}: loss ${worstLoss.toExponential(1)}, probe maxProb ${
          worstProb.toExponential(1)
        }, weights ${errs.params.toExponential(1)}, buffers ${
          errs.bufs.toExponential(1)
        }, running mean ${errs.mean.toExponential(1)}, var ${
          errs.var.toExponential(1)
        }; largest A–B probe distance ${worstAB.toExponential(1)}`,
      );
      if (!(worstLoss <= RTOL)) throw new Error(`loss differs by ${worstLoss} (relative)`);
      for (const [what, e] of Object.entries(errs)) {
        if (!(e <= RTOL)) throw new Error(`${what} differ from the reference by ${e} (relative)`);
      }
      // The probe's maxProb of A–A2 is a difference of nearly equal probabilities: its relative
      // accuracy is the 1e-14 rounding over the distance (>= ~1e-8 here).
      if (!(worstProb <= 1e-5)) throw new Error(`probe distances differ by ${worstProb}`);
      if (!(worstAB <= 1e-9)) throw new Error(`A–B probe distance ${worstAB} in df64`);
    },
    { ignore: !modelTested(model) },
  );
}
