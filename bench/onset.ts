/**
 * `deno task onset`: THEORY §6's float32 experiment over several seeds. Trains the runs in
 * lockstep for each seed on the default data and reports, per pair (A against each run), the
 * first step at which max |Δsoftmax| on the probe passes 1e-4, and the medians over seeds.
 * Equivalence holds as well as float arithmetic allows when A–B's median onset is comparable
 * to the one-ulp controls' (A–A1, A–A2); the gradient-flow control C departs at once.
 *
 * Usage: deno task onset [--seeds 5] [--steps 300] [--runs A,B,A1,A2,C] [-- other train flags]
 * Prints a table on stderr and the figures as one JSON object on stdout.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { validateConfig } from "../pipeline/config.ts";
import { runPipeline } from "../pipeline/pipeline.ts";
import { acquireGpu, gpuName } from "../shaders/gpu.ts";

/** The median of `xs`, treating null (never passed) as larger than any step. */
export function medianOnset(xs: (number | null)[]): number | null {
  const s = [...xs].sort((a, b) => (a ?? Infinity) - (b ?? Infinity)), n = s.length;
  if (n % 2) return s[(n - 1) / 2];
  const [a, b] = [s[n / 2 - 1], s[n / 2]];
  return a === null || b === null ? null : (a + b) / 2;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      seeds: { type: "string", default: "5" },
      steps: { type: "string", default: "300" },
      runs: { type: "string", default: "A,B,A1,A2,C" },
    },
    allowPositionals: true,
  });
  const extra: Record<string, string> = {};
  for (let i = 0; i + 1 < positionals.length; i += 2) {
    extra[positionals[i].replace(/^--/, "")] = positionals[i + 1];
  }
  const gpu = await acquireGpu();
  const seeds = Array.from({ length: Number(values.seeds) }, (_, i) => i);
  const onsets: Record<string, (number | null)[]> = {};
  const finalAcc: Record<string, number[]> = {};
  for (const seed of seeds) {
    const config = validateConfig({
      quiet: true,
      "eval-every": 0,
      ...extra,
      runs: values.runs,
      steps: values.steps,
      seed,
    }, "onset");
    const s = await runPipeline(config, gpu, { stdout: new WritableStream(), log: () => {} });
    const line = Object.entries(s.pairs).map(([r, p]) =>
      `A-${r} ${p.first_step_above["1e-4"] ?? "never"}`
    );
    console.error(
      `seed ${seed}: first step above 1e-4: ${line.join(", ")} (${
        s.steps_per_second.toFixed(2)
      } steps/s)`,
    );
    for (const [r, p] of Object.entries(s.pairs)) {
      (onsets[r] ??= []).push(p.first_step_above["1e-4"]);
    }
    for (const [r, f] of Object.entries(s.final)) (finalAcc[r] ??= []).push(f.heldout_acc);
  }
  const medians = Object.fromEntries(Object.entries(onsets).map(([r, xs]) => [r, medianOnset(xs)]));
  console.error(
    `median first step above 1e-4: ${
      Object.entries(medians).map(([r, m]) => `A-${r} ${m ?? "never"}`).join(", ")
    }`,
  );
  console.log(
    JSON.stringify({
      adapter: gpuName(gpu),
      steps: Number(values.steps),
      seeds,
      onsets,
      medians,
      final_heldout_acc: finalAcc,
    }),
  );
}
