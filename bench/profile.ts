/**
 * `deno task bench --profile`: where the time of one metered MLP step (R = 3, batch 128, probe
 * 512) goes. Each phase of the step is its own compute pass with GPU timestamps
 * (`timestamp-query`); the readback (mapping the metrics) is the wall-clock time from the GPU's
 * end of the step to the metrics on the CPU. Median over several steps, one step at a time.
 *
 * @module
 */

import type { Gpu } from "../shaders/gpu.ts";
import { STEP_PHASES, type StepPhase } from "../stages/step_program.ts";
import { buildModel } from "../core/models.ts";
import { BATCH, benchTrainer } from "./trainer.ts";

const STEPS = 12;
const PROBE = 512;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Times each phase of a metered step with the probe; prints a table, returns ms per phase. */
export async function profileStep(gpu: Gpu): Promise<Record<string, number>> {
  const layout = buildModel({ model: "mlp", hidden: [256, 256] }, {
    inputShape: [784],
    classes: 10,
    affine: true,
  });
  const { trainer, plan, x, y } = await benchTrainer(gpu, layout, ["A", "B", "A1"], PROBE, {
    profile: true,
  });
  const samples: Partial<Record<StepPhase | "readback" | "step (wall)", number[]>> = {};
  const add = (k: StepPhase | "readback" | "step (wall)", ms: number) =>
    (samples[k] ??= []).push(ms);
  for (let s = 0; s <= STEPS; s++) {
    const t0 = performance.now();
    const step = await trainer.submitStep(x, y, BATCH, plan.next(), {
      meter: true,
      probe: true,
      evalMode: false,
    });
    const phases = await step.phases!;
    const gpuDone = performance.now();
    await step.metrics;
    if (s === 0) continue; // warm-up
    add("readback", performance.now() - gpuDone);
    add("step (wall)", performance.now() - t0);
    for (const [phase, ns] of Object.entries(phases)) add(phase as StepPhase, ns / 1e6);
  }
  const rows = [...STEP_PHASES, "readback" as const].filter((k) => samples[k]);
  const ms = Object.fromEntries(rows.map((k) => [k, median(samples[k]!)]));
  const wall = median(samples["step (wall)"]!);
  console.error(`profile: one metered step, ${layout.description}, R=3, batch ${BATCH}, probe 512`);
  console.error(`  ${"phase".padEnd(18)} ${"ms".padStart(8)}  share of the step`);
  for (const [k, v] of Object.entries(ms)) {
    console.error(`  ${k.padEnd(18)} ${v.toFixed(3).padStart(8)}  ${(100 * v / wall).toFixed(1)}%`);
  }
  console.error(`  ${"step (wall clock)".padEnd(18)} ${wall.toFixed(3).padStart(8)}`);
  const out = { ...ms, "step (wall)": wall };
  console.log(JSON.stringify({ adapter: gpu.adapterDescription, profile_ms: out }));
  return out;
}
