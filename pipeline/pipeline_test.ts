/**
 * The whole pipeline on the GPU in float32, on the shipped default data and the default model
 * (784-256-256-10, batch 128): THEORY's claims as the monitor reports them, and the output
 * formats. Sized to run in about a minute on lavapipe.
 */

import { parse } from "csv-parse/sync";
import { validateConfig } from "./config.ts";
import { runPipeline, type RunSummary } from "./pipeline.ts";
import { ExpLrRecursion } from "../core/schedule.ts";
import type { Gpu } from "../shaders/gpu.ts";
import { gpuTest } from "../shaders/test_gpu.ts";

/** Runs the pipeline with `settings` over the defaults; returns the parsed rows and summary. */
async function run(
  gpu: Gpu,
  settings: Record<string, unknown>,
): Promise<{ rows: Record<string, string>[]; text: string; summary: RunSummary }> {
  let text = "";
  const decoder = new TextDecoder();
  const stdout = new WritableStream<Uint8Array>({ write: (c) => void (text += decoder.decode(c)) });
  const summary = await runPipeline(validateConfig({ quiet: true, ...settings }, "test"), gpu, {
    stdout,
    log: () => {},
  });
  const rows = settings.format === "jsonl"
    ? []
    : parse(text, { columns: true }) as Record<string, string>[];
  return { rows, text, summary };
}

const num = (s: string | undefined) => (s === undefined || s === "" ? NaN : Number(s));

gpuTest(
  "R=5 (A,B,A1,A2,C), eps 1e-5 scaled: B's lr is the recursion, its norm ratio is c_t, A-B < 1e-4 for 20 steps",
  async (gpu) => {
    const { rows, summary } = await run(gpu, { runs: "A,B,A1,A2,C", steps: 20, "probe-every": 1 });
    if (rows.length !== 20) throw new Error(`${rows.length} rows, expected 20`);
    const rec = new ExpLrRecursion(0.9);
    let worstLr = 0, worstRatio = 0, worstDist = 0;
    for (const [t, row] of rows.entries()) {
      const { etaB, cNext } = rec.next(0.1, 5e-4);
      if (Number(row.step) !== t) throw new Error(`row ${t} has step ${row.step}`);
      worstLr = Math.max(worstLr, Math.abs(num(row["B.lr"]) / etaB - 1));
      if (Math.abs(num(row["B.c_pred"]) / cNext - 1) > 1e-12) {
        throw new Error(`step ${t}: c_pred ${row["B.c_pred"]} vs ${cNext}`);
      }
      worstRatio = Math.max(worstRatio, Math.abs(num(row["B.norm_ratio"]) / cNext - 1));
      worstDist = Math.max(worstDist, num(row["B.dist_maxprob"]));
      for (const r of ["A1", "A2"]) {
        if (Math.abs(num(row[`${r}.norm_ratio`]) - 1) > 1e-5) {
          throw new Error(`step ${t}: ${r}.norm_ratio ${row[`${r}.norm_ratio`]}`);
        }
      }
    }
    console.error(
      `B.lr vs recursion ${worstLr.toExponential(1)}, norm ratio vs c ${
        worstRatio.toExponential(1)
      }, max A-B ${worstDist.toExponential(2)}`,
    );
    if (worstLr > 1e-6) throw new Error(`B.lr differs from the recursion by ${worstLr} (relative)`);
    if (worstRatio > 1e-4) {
      throw new Error(`B.norm_ratio differs from c_t by ${worstRatio} (relative)`);
    }
    if (worstDist >= 1e-4) throw new Error(`A-B max |Δsoftmax| reached ${worstDist}`);
    const c = summary.pairs.C.max_dist_maxprob, b = summary.pairs.B.max_dist_maxprob;
    console.error(
      `max distance from A after 20 steps: B ${b.toExponential(2)}, A1 ${
        summary.pairs.A1.max_dist_maxprob.toExponential(2)
      }, A2 ${summary.pairs.A2.max_dist_maxprob.toExponential(2)}, C ${c.toExponential(2)}`,
    );
    if (!(c > 10 * b)) {
      throw new Error(
        `C (${c}) is not far beyond B (${b}): the gradient-flow control shows nothing`,
      );
    }
    for (const r of summary.runs) {
      if (!(summary.final[r].heldout_acc > 0.5)) {
        throw new Error(`run ${r} held-out accuracy ${summary.final[r].heldout_acc}`);
      }
    }
  },
);

gpuTest(
  "closed-zero (closed form with zero buffers) passes 1e-4 within 10 steps; closed (matched buffer) does not",
  async (gpu) => {
    const settings = { runs: "A,B", steps: 10, "eval-every": 0, "probe-every": 1 };
    const zero = await run(gpu, { ...settings, explr: "closed-zero" });
    const onset = zero.summary.pairs.B.first_step_above["1e-4"];
    const matched = await run(gpu, { ...settings, explr: "closed" });
    console.error(
      `closed-zero: first step above 1e-4: ${onset}; closed: max ${
        matched.summary.pairs.B.max_dist_maxprob.toExponential(2)
      }`,
    );
    if (onset === null || onset > 9) throw new Error(`closed-zero never passed 1e-4 in 10 steps`);
    if (matched.summary.pairs.B.max_dist_maxprob >= 1e-4) {
      throw new Error("closed with matched buffer passed 1e-4");
    }
  },
);

gpuTest(
  "a Lemma-2 rescale from --rescale-above is an event row and leaves the A-B curves unchanged",
  async (gpu) => {
    const settings = {
      runs: "A,B",
      steps: 20,
      wd: 0.05,
      "eval-every": 5,
      "probe-every": 1,
      format: "csv",
    };
    const plain = await run(gpu, { ...settings, "rescale-above": 1e30 });
    const forced = await run(gpu, { ...settings, "rescale-above": 13.5 });
    const events = forced.rows.filter((r) => r.event !== "");
    console.error(
      `${events.length} rescales: ${events.map((e) => `${e.step}:${e.event}`).join(", ")}`,
    );
    if (events.length < 1) throw new Error("no rescale happened");
    const steps = forced.rows.filter((r) => r.event === "");
    let worst = 0;
    for (const [t, row] of steps.entries()) {
      for (const col of ["B.dist_maxprob", "B.eval_maxprob", "B.loss"]) {
        const a = num(row[col]), b = num(plain.rows[t][col]);
        if (Number.isNaN(a) !== Number.isNaN(b)) throw new Error(`step ${t} ${col}: ${a} vs ${b}`);
        if (!Number.isNaN(a)) worst = Math.max(worst, Math.abs(a - b));
      }
      if (Math.abs(num(row["B.norm_ratio"]) / num(row["B.c_pred"]) - 1) > 1e-4) {
        throw new Error(
          `step ${t}: norm ratio ${row["B.norm_ratio"]} vs c_pred ${
            row["B.c_pred"]
          } after rescales`,
        );
      }
    }
    console.error(`largest change of B's distance/loss columns under rescaling: ${worst}`);
    if (worst > 1e-6) throw new Error(`rescaling changed the curves by ${worst}`);
  },
);

gpuTest(
  "JSON Lines output, --every thins rows, --probe-every and --eval-every pick their steps, --per-layer adds per-layer effective lrs",
  async (gpu) => {
    const { text, summary } = await run(gpu, {
      runs: "A,B",
      steps: 8,
      every: 3,
      format: "jsonl",
      "per-layer": true,
      "eval-every": 2,
      "probe-every": 4,
    });
    if (summary.steps !== 8) throw new Error(`summary counts ${summary.steps} steps, expected 8`);
    const lines = text.trimEnd().split("\n").map((l) => JSON.parse(l));
    const steps = lines.map((l) => l.step);
    // Every 3rd step and the last; eval mode at the first metered step after each multiple of 2.
    if (steps.join() !== "0,3,6,7") throw new Error(`steps ${steps}`);
    for (const l of lines) {
      for (
        const key of [
          "A.loss",
          "B.batch_maxprob",
          "B.batch_kl",
          "B.c_pred",
          "A.eff_lr.L0",
          "B.eff_lr.L1",
        ]
      ) {
        if (typeof l[key] !== "number") throw new Error(`step ${l.step}: ${key} is ${l[key]}`);
      }
      if ("event" in l) throw new Error("a step row carries an event");
      const evaluated = typeof l["B.eval_maxprob"] === "number";
      if (evaluated !== (l.step !== 7)) throw new Error(`step ${l.step}: eval mode ${evaluated}`);
      // The probe at the first metered step at or after each multiple of 4, and the last step.
      const probed = ["B.dist_maxprob", "A.probe_acc"].map((k) => typeof l[k] === "number");
      const expected = [0, 6, 7].includes(l.step);
      if (probed.some((p) => p !== expected)) throw new Error(`step ${l.step}: probe ${probed}`);
    }
  },
);
