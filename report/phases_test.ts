/**
 * Phase marks: from the config (warm-up end, milestones as steps or fractions) and found in an
 * lr column (jumps and kinks of the trainer's own schedules; none for constant or cosine).
 */

import { constantSchedule, lrAt, type LrScheduleSpec } from "../core/schedule.ts";
import { LrPhaseDetector, type Mark, phasesFromConfig } from "./phases.ts";

function assertEquals(a: unknown, b: unknown): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(`${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
  }
}

const steps = (marks: Mark[] | null) => marks?.map((m) => m.step) ?? null;

Deno.test("phases from the config: warm-up end and milestones (steps and fractions)", () => {
  const step = { schedule: "step", milestones: [0.5, 0.75], "step-factor": 0.1, warmup: 20 };
  assertEquals(steps(phasesFromConfig({ ...step, steps: 200 }, null)), [20, 100, 150]);
  assertEquals(steps(phasesFromConfig({ ...step, steps: 0 }, 70)), [20, 35, 53]);
  assertEquals(phasesFromConfig({ ...step, milestones: [30] }, null)?.[1].label, "lr ×0.1");
  // Fractions of an unknown length (a run stopped early, --epochs): not from the config.
  assertEquals(phasesFromConfig({ ...step, steps: 0 }, null), null);
  assertEquals(steps(phasesFromConfig({ schedule: "cosine", warmup: 0 }, 70)), []);
});

/** The marks the detector finds in the schedule's lr, metered every `every` steps. */
function detect(spec: Partial<LrScheduleSpec>, total: number, every = 1): Mark[] {
  const full: LrScheduleSpec = { ...constantSchedule(0.1, total), ...spec };
  const d = new LrPhaseDetector();
  for (let t = 0; t < total; t += every) d.add(t, lrAt(full, t));
  return d.finish();
}

Deno.test("the lr column: step milestones are jumps, the end of warm-up a kink", () => {
  assertEquals(steps(detect({}, 100)), []);
  const marks = detect({ kind: "step", milestones: [0.5, 0.75] }, 100);
  assertEquals(steps(marks), [50, 75]);
  assertEquals(marks[0].label, "lr ×0.1");
  assertEquals(steps(detect({ warmupSteps: 20 }, 100)), [20]);
  assertEquals(steps(detect({ kind: "step", milestones: [60], warmupSteps: 10 }, 100)), [10, 60]);
  // Metered every 10 steps: a milestone at 35 shows at the first row after it.
  assertEquals(steps(detect({ kind: "step", milestones: [35] }, 100, 10)), [40]);
});

Deno.test("the lr column: a cosine bends smoothly (no mark) unless warm-up ends", () => {
  assertEquals(steps(detect({ kind: "cosine" }, 70)), []);
  assertEquals(steps(detect({ kind: "cosine" }, 1000)), []);
  assertEquals(steps(detect({ kind: "cosine", warmupSteps: 30 }, 300)), [30]);
  assertEquals(steps(detect({ kind: "cosine", minFactor: 0.1 }, 500, 7)), []);
});

Deno.test("the lr column: short series, repeated steps and NaN do not confuse it", () => {
  const d = new LrPhaseDetector();
  for (const [s, lr] of [[0, 0.1], [0, 0.1], [1, NaN], [2, 0.01]] as const) d.add(s, lr);
  assertEquals(steps(d.finish()), [2]);
  const one = new LrPhaseDetector();
  one.add(0, 0.1);
  assertEquals(one.finish(), []);
});
