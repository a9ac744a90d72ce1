/**
 * The GPU trainer against the float64 reference trainer: same initial weights, same batches,
 * same plan, R = 3 runs (A, B, A1) on a small BatchNorm MLP with widths that are not multiples
 * of any tile. Gradients at step 0, then losses, weights, momentum buffers and running
 * statistics over 20 steps, and the probe metrics the monitor reads, each step from the state
 * the GPU reached (float32 training is chaotic: trajectories cannot be compared for long).
 */

import { type Gpu, poison } from "../shaders/gpu.ts";
import type { Precision } from "../shaders/precision.ts";
import { gpuTest } from "../shaders/test_gpu.ts";
import { GpuTrainer } from "./trainer.ts";
import type { TrainerState } from "./state.ts";
import { RunPlan, type RunsSpec } from "../core/runs.ts";
import { forwardBackward, type ReferenceTrainer } from "../reference/trainer.ts";
import { probeDistance } from "../reference/metrics.ts";
import { dot } from "../reference/ops.ts";
import { assertClose } from "../core/test_util.ts";
import {
  CONV_MODELS,
  IN_PLACE_RELU_MODEL,
  MLP,
  type Model,
  modelTested,
  NORM_MODELS,
  setupTrainers,
  trainerSpec,
} from "./test_trainers.ts";

const STEPS = 20;

/** {@link setupTrainers} over the test's {@link STEPS}. */
const setup = (
  gpu: Gpu,
  runs: RunsSpec["runs"],
  runningStats: "weightnorm" | "plain",
  model: Model = MLP,
  precision: Precision = "f32",
) => setupTrainers(gpu, { runs, steps: STEPS, runningStats, model, precision });

/** The plan of the test's runs (a twin of the one {@link setup} gives each trainer). */
const spec = (runs: RunsSpec["runs"]) => trainerSpec(runs, STEPS);

/**
 * |a - b| / |b| over the arrays (2-norms), as a single relative-error figure: a float32 run may
 * round one element across a discontinuity (a ReLU's or an argmax's) where the float64 one does
 * not, which moves that element far and the vector hardly; an error in a kernel moves many.
 */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let d2 = 0, b2 = 0;
  for (let i = 0; i < b.length; i++) {
    d2 += (a[i] - b[i]) ** 2;
    b2 += b[i] ** 2;
  }
  return b.length === 0 ? 0 : Math.sqrt(d2 / b2); // no running statistics without BatchNorm
}

gpuTest(
  "GPU gradients at step 0 equal the float64 reference's (every run, every tensor)",
  async (gpu) => {
    const { layout, gpuPlan, trainer, batch, init, rows: ROWS } = await setup(
      gpu,
      ["A", "B", "A1"],
      "weightnorm",
    );
    const { x, y } = batch();
    const { metrics } = await trainer.submitStep(x, y, ROWS, gpuPlan.next(), {
      meter: true,
      probe: true,
      evalMode: false,
    });
    await metrics;
    const { grads } = await trainer.readState();
    for (let r = 0; r < 3; r++) {
      const w = init.params.subarray(r * layout.size, (r + 1) * layout.size);
      const want = forwardBackward(layout, w, x, y, ROWS, 1e-5).grad;
      for (const t of layout.tensors) {
        const got = grads.subarray(r * layout.size + t.offset, r * layout.size + t.offset + t.size);
        const exp = want.subarray(t.offset, t.offset + t.size);
        const scale = Math.sqrt(dot(exp, exp) / t.size);
        assertClose(got, exp, 1e-3, 1e-4 * scale, `run ${r} ${t.name} gradient`);
      }
    }
  },
);

gpuTest(
  "every field of the metrics record is written on a metered step with both probes, nothing else",
  async (gpu) => {
    const { gpuPlan, trainer, batch, rows } = await setup(gpu, ["A", "B", "A1"], "weightnorm");
    // The record's buffer is the trainer's own; poisoning it shows every word no kernel writes.
    poison(gpu, (trainer as unknown as { b: { record: GPUBuffer } }).b.record);
    const { x, y } = batch();
    const step = await trainer.submitStep(x, y, rows, gpuPlan.next(), {
      meter: true,
      probe: true,
      evalMode: true,
    });
    const m = await step.metrics!, record = trainer.record;
    const written = new Uint8Array(record.words);
    for (const f of record.fields) written.fill(1, f.offset, f.offset + f.size);
    for (let r = 0; r < 3; r++) {
      for (let i = 0; i < record.words; i++) {
        const v = m[r * record.words + i];
        const field = record.fields.find((f) => i >= f.offset && i < f.offset + f.size);
        if (written[i] && !Number.isFinite(v)) throw new Error(`run ${r} ${field!.name}: ${v}`);
        if (!written[i] && !Number.isNaN(v)) throw new Error(`run ${r}: pad word ${i} written`);
      }
    }
  },
);

const FOLLOW = [
  ...(["weightnorm", "plain"] as const).map((stats) => ({ model: MLP, stats })),
  ...[...CONV_MODELS, ...NORM_MODELS, IN_PLACE_RELU_MODEL].map((model) => ({
    model,
    stats: "weightnorm" as const,
  })),
];

/**
 * How far one step of a float32 run may land from the float64 step taken from the same state
 * (2-norm relative errors of the whole vectors): a step's own roundings, about 1e-7, with margin.
 */
const STEP_TOLERANCE = { weights: 1e-6, buffers: 2e-5, runningMean: 2e-5, runningVar: 2e-5 };

/**
 * The reference takes `state` (the GPU's, float32) as its own: the next step is compared from
 * the same point on both sides.
 */
function shadow(ref: ReferenceTrainer, state: TrainerState, layout: Model["layout"]): void {
  const P = layout.size, S = layout.statsSize;
  ref.params.forEach((p, r) => p.set(state.params.subarray(r * P, (r + 1) * P)));
  ref.bufs.forEach((b, r) => b.set(state.bufs.subarray(r * P, (r + 1) * P)));
  ref.stats.forEach((st, r) => {
    st.mean.set(state.runningMean.subarray(r * S, (r + 1) * S));
    st.variance.set(state.runningVar.subarray(r * S, (r + 1) * S));
  });
}

for (const { model, stats: runningStats } of FOLLOW) {
  gpuTest(
    `GPU trainer follows the float64 reference for 20 steps, short batches too (${model.name}; A, B, A1; ${runningStats} running stats)`,
    async (gpu) => {
      const { layout, gpuPlan, trainer, ref, batch, probe, rows: ROWS, short } = await setup(
        gpu,
        ["A", "B", "A1"],
        runningStats,
        model,
      );
      const dim = layout.inputSize, PROBE = probe.rows;
      let worstLoss = 0, worstProb = 0, worstBatch = 0;
      const worstState = { weights: 0, buffers: 0, runningMean: 0, runningVar: 0 };
      // Float32 training is chaotic: a float32 run and its float64 twin drift apart, and once a
      // ReLU input or a max-pool tie lies within the drift, they take different branches and
      // part for good. So every step is compared from the same state: after it, the reference
      // takes the GPU's state (shadowing), and errors cannot accumulate. A single step's
      // roundings can still straddle a kink (one element among ~1e5 within ~1e-7 of it); one
      // such step per trajectory is allowed, not two: a kernel or optimizer error repeats.
      let straddled: { t: number; what: string } | undefined;
      for (let t = 0; t < STEPS; t++) {
        const { x, y } = batch();
        // Every 7th batch is a short one (a kept last batch): its own pass, built on first use.
        const rows = t % 7 === 6 ? short : ROWS;
        const { metrics } = await trainer.submitStep(x, y, rows, gpuPlan.next(), {
          meter: true,
          probe: true,
          evalMode: true,
        });
        const r64 = ref.step(x.subarray(0, rows * dim), y.subarray(0, rows), rows);
        const m = trainer.record.reader(await metrics!);
        const failed: string[] = [];
        const expect = (ok: boolean, what: () => string) => ok || failed.push(what());
        for (let r = 0; r < 3; r++) {
          const loss = m(r, "loss"), lossErr = Math.abs(loss - r64.loss[r]) / r64.loss[r];
          worstLoss = Math.max(worstLoss, lossErr);
          expect(lossErr < 1e-5, () => `run ${r}: loss ${loss}, reference ${r64.loss[r]}`);
          // An exact tie at the argmax can flip in float32; allow one row.
          expect(
            Math.abs(m(r, "correct") - r64.correct[r]) <= 1,
            () => `run ${r}: ${m(r, "correct")} correct, reference ${r64.correct[r]}`,
          );
        }
        // The distances against A on the training batch (the logits of this step's forward).
        for (let r = 1; r < 3; r++) {
          const d = probeDistance(r64.logits[0], r64.logits[r], y, rows, layout.classes);
          const got = m(r, "batch.maxprob"), agree = m(r, "batch.agree");
          worstBatch = Math.max(worstBatch, Math.abs(got - d.maxProb));
          // An exact tie at the argmax can flip in float32: one row may disagree.
          expect(
            Math.abs(got - d.maxProb) <= 1e-5 && Math.abs(agree - d.agree * rows) <= 1,
            () =>
              `run ${r} batch: maxProb ${got}, agree ${agree}; reference ${d.maxProb}, ${
                d.agree * rows
              }`,
          );
          const kl = m(r, "batch.kl") / rows;
          expect(
            Math.abs(kl - d.kl) <= 1e-5 * Math.max(1, d.kl),
            () => `run ${r} batch: KL ${kl} vs ${d.kl}`,
          );
        }
        // The monitor's distances against A on the probe, train and eval mode.
        for (const mode of ["train", "eval"] as const) {
          const logits = ref.probeLogits(probe.x, PROBE, mode);
          for (let r = 1; r < 3; r++) {
            const d = probeDistance(logits[0], logits[r], probe.y, PROBE, layout.classes);
            const got = m(r, `${mode === "train" ? "probe" : "eval"}.maxprob`);
            worstProb = Math.max(worstProb, Math.abs(got - d.maxProb));
            expect(
              Math.abs(got - d.maxProb) <= 1e-5,
              () => `run ${r} ${mode}: maxProb ${got}, reference ${d.maxProb}`,
            );
          }
        }
        // The state after the step, then the reference continues from it.
        const state = await trainer.readState();
        const P = layout.size, S = layout.statsSize;
        for (let r = 0; r < 3; r++) {
          const errors = {
            weights: relErr(state.params.subarray(r * P, (r + 1) * P), ref.params[r]),
            buffers: relErr(state.bufs.subarray(r * P, (r + 1) * P), ref.bufs[r]),
            runningMean: relErr(state.runningMean.subarray(r * S, (r + 1) * S), ref.stats[r].mean),
            runningVar: relErr(
              state.runningVar.subarray(r * S, (r + 1) * S),
              ref.stats[r].variance,
            ),
          };
          for (const [k, e] of Object.entries(errors) as [keyof typeof errors, number][]) {
            worstState[k] = Math.max(worstState[k], e);
            expect(
              e < STEP_TOLERANCE[k],
              () => `run ${r}: ${k} ${e.toExponential(1)} from the step's reference`,
            );
          }
        }
        if (failed.length) {
          const what = failed.join("; ");
          if (straddled) {
            throw new Error(
              `step ${t}: ${what} (a second step apart from the reference, after step ${straddled.t}: ${straddled.what})`,
            );
          }
          straddled = { t, what };
          console.error(`step ${t} straddled a kink, allowed once: ${what}`);
        }
        shadow(ref, state, layout);
      }
      const e = (v: number) => v.toExponential(1);
      console.error(
        `worst over ${STEPS} steps: weights ${e(worstState.weights)}, buffers ${
          e(worstState.buffers)
        }, ` +
          `running mean ${e(worstState.runningMean)}, var ${e(worstState.runningVar)}; loss ${
            e(worstLoss)
          }, ` +
          `maxProb ${e(worstProb)} (probe), ${e(worstBatch)} (batch)`,
      );
    },
    { ignore: !modelTested(model) },
  );
}

/**
 * How far a rescale may move run B's metrics, and ‖w_B‖/‖w_A‖ stray from c_t: float32 rounds
 * the rescaled and the plain trajectories differently; df64 keeps them ~1e-14 apart.
 */
const RESCALE_TOLERANCE: Record<"f32" | "df64", { metrics: number; ratio: number }> = {
  f32: { metrics: 1e-6, ratio: 1e-4 },
  df64: { metrics: 1e-12, ratio: 1e-12 },
};
for (const precision of ["f32", "df64"] as const) {
  gpuTest(
    `Lemma-2 rescales of run B every 3 steps (by 2^-5, 2^3, ...) leave its loss and distances unchanged (${precision})`,
    async (gpu) => {
      const rescaled = await setup(gpu, ["A", "B"], "plain", MLP, precision);
      const twin = rescaled.trainer, plain = new RunPlan(spec(["A", "B"]));
      const reference = await GpuTrainer.create(
        gpu,
        {
          precision,
          layout: rescaled.layout,
          runs: 2,
          batchRows: rescaled.rows,
          probe: rescaled.probe,
          bnMomentum: 0.1,
          runningStats: "plain",
          seed: 5,
          inFlight: 2,
        },
        rescaled.init.params,
        rescaled.init.bufs,
      );
      let worst = 0, applied = 0;
      for (let t = 0; t < STEPS; t++) {
        if (t % 3 === 1) rescaled.gpuPlan.requestRescale(1, t % 2 ? 2 ** -5 : 2 ** 3);
        const { x, y } = rescaled.batch();
        const steps = rescaled.gpuPlan.next();
        if (steps[1].rescale !== 1) applied++;
        const a = await twin.submitStep(x, y, rescaled.rows, steps, {
          meter: true,
          probe: true,
          evalMode: true,
        });
        const b = await reference.submitStep(x, y, rescaled.rows, plain.next(), {
          meter: true,
          probe: true,
          evalMode: true,
        });
        const ma = twin.record.reader(await a.metrics!);
        const mb = reference.record.reader(await b.metrics!);
        for (const field of ["loss", "probe.maxprob", "eval.maxprob", "probe.kl"]) {
          worst = Math.max(worst, Math.abs(ma(1, field) - mb(1, field)));
        }
        const ratio = Math.sqrt(ma(1, "norm2") / ma(0, "norm2"));
        if (!(Math.abs(ratio / steps[1].cPred - 1) <= RESCALE_TOLERANCE[precision].ratio)) {
          throw new Error(`step ${t}: norm ratio ${ratio}, c_pred ${steps[1].cPred}`);
        }
      }
      console.error(
        `${applied} rescales; largest change of run B's loss and probe distances: ${worst}`,
      );
      if (applied < 6) throw new Error(`only ${applied} rescales were applied`);
      if (!(worst <= RESCALE_TOLERANCE[precision].metrics)) {
        throw new Error(`rescaling changed run B's metrics by ${worst}`);
      }
    },
  );
}

gpuTest(
  "metering every 4th step leaves training identical to metering every step",
  async (gpu) => {
    const every = await setup(gpu, ["A", "B"], "weightnorm");
    const sparse = await GpuTrainer.create(
      gpu,
      {
        layout: every.layout,
        runs: 2,
        batchRows: every.rows,
        probe: every.probe,
        bnMomentum: 0.1,
        runningStats: "weightnorm",
        seed: 5,
        inFlight: 2,
      },
      every.init.params,
      every.init.bufs,
    );
    const sparsePlan = new RunPlan(spec(["A", "B"]));
    for (let t = 0; t < 12; t++) {
      const { x, y } = every.batch();
      await every.trainer.submitStep(x, y, every.rows, every.gpuPlan.next(), {
        meter: true,
        probe: true,
        evalMode: true,
      });
      await sparse.submitStep(x, y, every.rows, sparsePlan.next(), {
        meter: t % 4 === 3,
        probe: t % 8 === 3,
        evalMode: false,
      });
    }
    const [a, b] = [await every.trainer.readState(), await sparse.readState()];
    for (const key of ["params", "bufs", "runningMean", "runningVar"] as const) {
      if (a[key].some((v, i) => v !== b[key][i])) {
        throw new Error(`${key} differs between metering schedules`);
      }
    }
  },
);
