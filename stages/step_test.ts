/**
 * The step stage over a fake trainer, on the CPU: it submits what the step policy decides and
 * emits in order, whatever the number of steps in flight. The policy's own cases are in
 * core/step_policy_test.ts.
 */

import type { Batch } from "./data/loader.ts";
import { RunControl, type StepOutput, stepStage, type StepStageOptions } from "./step.ts";
import type { GpuTrainer } from "./trainer.ts";
import { RunPlan, type RunStep } from "../core/runs.ts";
import { RESCALE_LAG } from "../core/step_policy.ts";
import { testRunsSpec } from "../core/test_fixtures.ts";
import { constantSchedule } from "../core/schedule.ts";

const RUNS = ["A", "B", "A1"] as const;
const WORDS = 4, LOSS = 2;

/** What the fake trainer was asked to do at one step. */
interface Submitted {
  step: number;
  meter: boolean;
  probe: boolean;
  evalMode: boolean;
  rescale: number[];
}

/**
 * A trainer whose S norms grow by a factor per step and shrink with every rescale its plan
 * carries, and whose metrics hold the step number and a loss (NaN from `nanLossAt` on).
 */
function fakeTrainer(submitted: Submitted[], nanLossAt = Infinity): GpuTrainer {
  const scale = RUNS.map(() => 1);
  let step = 0;
  const fake = {
    // The metrics record, read by field name: only the loss is needed here.
    record: {
      words: WORDS,
      reader: (m: Float64Array) => (run: number, name: string) =>
        name === "loss" ? m[run * WORDS + LOSS] : NaN,
    },
    submitStep(
      _x: Float32Array,
      _y: Int32Array,
      _rows: number,
      steps: RunStep[],
      o: { meter: boolean; probe: boolean; evalMode: boolean },
    ) {
      const t = step++;
      steps.forEach((s, r) => scale[r] *= s.rescale);
      submitted.push({ step: t, ...o, rescale: steps.map((s) => s.rescale) });
      const norms = Promise.resolve(RUNS.map((_, r) => 6 * (1.1 + 0.05 * r) ** t * scale[r]));
      const m = new Float64Array(RUNS.length * WORDS);
      for (let r = 0; r < RUNS.length; r++) {
        m[r * WORDS] = t;
        m[r * WORDS + LOSS] = t >= nanLossAt && r === 1 ? NaN : 2.3;
      }
      return Promise.resolve({ norms, metrics: o.meter ? Promise.resolve(m) : undefined });
    },
    readState: () => Promise.resolve({ scale: [...scale] }),
  };
  return fake as unknown as GpuTrainer;
}

/** Runs `steps` batches through a step stage; its output and what the trainer was asked. */
async function run(steps: number, over: Partial<StepStageOptions>, nanLossAt?: number) {
  const submitted: Submitted[] = [];
  const trainer = fakeTrainer(submitted, nanLossAt);
  const plan = new RunPlan(testRunsSpec({ runs: [...RUNS], schedule: constantSchedule(0.1, 40) }));
  const opts: StepStageOptions = {
    runs: [...RUNS],
    every: 3,
    totalSteps: steps,
    probeEvery: 5,
    evalEvery: 4,
    inFlight: 2,
    rescaleAbove: 13.07,
    checkpointEvery: 10,
    snapshots: true,
    control: new RunControl(),
    ...over,
  };
  const batches = Array.from({ length: steps }, (_, step): Batch => ({
    step,
    epoch: 0,
    size: 1,
    x: new Float32Array(1),
    y: new Int32Array(1),
  }));
  const out: StepOutput[] = [];
  await ReadableStream.from(batches).pipeThrough(stepStage(trainer, plan, opts))
    .pipeTo(new WritableStream({ write: (o) => void out.push(o) }));
  return { out, submitted, control: opts.control };
}

function assertSame(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}:\n  got      ${a}\n  expected ${e}`);
}

/** The output as a comparable summary: records by step and flags, snapshots by step. */
function summary(out: StepOutput[]) {
  return out.map((o) =>
    o.kind === "step"
      ? {
        step: o.step,
        probe: o.probe,
        evalMode: o.evalMode,
        rescales: o.rescales,
        m: o.metrics[0],
      }
      : { snapshot: o.step, stepper: o.stepper, gpu: o.gpu, diverged: o.diverged }
  );
}

Deno.test("stepStage: submits the policy's decisions and emits them in order", async () => {
  const { out, submitted } = await run(23, {});
  assertSame(submitted.map((s) => s.step), [...Array(23).keys()], "every step submitted");
  const metered = submitted.filter((s) => s.meter).map((s) => s.step);
  assertSame(metered, [0, 3, 6, 9, 12, 15, 18, 21, 22], "metered");
  assertSame(submitted.filter((s) => s.probe).map((s) => s.step), [0, 6, 12, 15, 21, 22], "probe");
  assertSame(submitted.filter((s) => s.evalMode).map((s) => s.step), [0, 6, 9, 12, 18, 21], "eval");
  const records = out.filter((o) => o.kind === "step");
  assertSame(records.map((o) => o.step), metered, "records");
  assertSame(records.map((o) => o.metrics[0]), metered, "each record carries its own metrics");
  assertSame(out.filter((o) => o.kind === "snapshot").map((o) => o.step), [9, 19, 22], "snapshots");
  // Each rescale is applied RESCALE_LAG steps after the step whose norm passed the threshold,
  // and reported with the next metered step.
  const applied = submitted.flatMap((s) =>
    s.rescale.flatMap((f, r) => f === 1 ? [] : [{ step: s.step, run: RUNS[r], factor: f }])
  );
  if (applied.length < 3) throw new Error(`expected several rescales, got ${applied.length}`);
  if (applied.some((a) => a.run === "A")) throw new Error("run A rescaled");
  const reported = records.flatMap((o) =>
    o.rescales.map(({ step, run, factor }) => ({ step, run, factor }))
  );
  assertSame(reported, applied, "reported rescales");
  if (applied[0].step < RESCALE_LAG) throw new Error("a rescale before the first decision");
});

Deno.test("stepStage: the same output with 1, 2 or 5 steps in flight and every 1 or 3", async () => {
  for (const every of [1, 3]) {
    const base = summary((await run(23, { every, inFlight: 1 })).out);
    for (const inFlight of [2, 5]) {
      assertSame(summary((await run(23, { every, inFlight })).out), base, `in flight ${inFlight}`);
    }
  }
});

Deno.test("stepStage: a NaN loss stops training; the row that diverged is the last", async () => {
  const { out, submitted, control } = await run(23, { every: 1, inFlight: 2 }, 7);
  assertSame(control.diverged, "training diverged at step 7: run B has loss NaN", "message");
  const records = out.filter((o) => o.kind === "step");
  assertSame(records.at(-1)?.step, 7, "last row");
  if (submitted.length > 7 + 2 + 1) throw new Error(`${submitted.length} steps submitted`);
  const snapshots = out.filter((o) => o.kind === "snapshot");
  assertSame(snapshots.map((s) => [s.step, s.diverged]), [[submitted.length - 1, true]], "final");
});
