import { assertThrows } from "./test_util.ts";
import type { RunName } from "./runs.ts";
import {
  RESCALE_LAG,
  rescaleFactor,
  type StepDecision,
  StepPolicy,
  type StepPolicyOptions,
} from "./step_policy.ts";

const RUNS: RunName[] = ["A", "B", "A1", "C"];

/** The flags of a default run (no rescale, no eval mode, no checkpoints) with `over` on top. */
function options(over: Partial<StepPolicyOptions> = {}): StepPolicyOptions {
  return {
    runs: RUNS,
    every: 1,
    totalSteps: 20,
    probeEvery: 1,
    evalEvery: 0,
    rescaleAbove: 65536,
    checkpointEvery: 0,
    ...over,
  };
}

/** The steps in [0, totalSteps) at which `flag` of the plan is set (norms all small). */
function stepsWith(o: StepPolicyOptions, flag: "meter" | "probe" | "evalMode" | "checkpoint") {
  const policy = new StepPolicy(o), steps: number[] = [];
  for (let t = 0; t < o.totalSteps; t++) if (policy.plan(t)[flag]) steps.push(t);
  return steps;
}

function assertSame(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}:\n  got      ${a}\n  expected ${e}`);
}

Deno.test("rescaleFactor: powers of two landing in (T/4, T/2], 1 below the threshold", () => {
  for (const t of [0.5, 1, 14, 65536]) {
    if (rescaleFactor(t, t) !== 1 || rescaleFactor(t * 0.9, t) !== 1) {
      throw new Error(`rescaled at or below ${t}`);
    }
    for (const n of [t * 1.0001, t * 1.9, t * 2, t * 3, t * 1e6]) {
      const s = rescaleFactor(n, t), after = n * s;
      if (Math.log2(s) !== Math.round(Math.log2(s))) {
        throw new Error(`factor ${s} is not a power of two`);
      }
      if (!(after > t / 4 && after <= t / 2)) {
        throw new Error(`norm ${n} rescaled to ${after}, threshold ${t}`);
      }
    }
  }
});

Deno.test("step policy: --every meters every N-th step from 0 and the last step", () => {
  assertSame(stepsWith(options({ totalSteps: 5 }), "meter"), [0, 1, 2, 3, 4], "every 1");
  assertSame(stepsWith(options({ every: 3, totalSteps: 10 }), "meter"), [0, 3, 6, 9], "every 3");
  // The last step (10) is not a multiple of 3 and is metered all the same.
  assertSame(stepsWith(options({ every: 3, totalSteps: 11 }), "meter"), [0, 3, 6, 9, 10], "11");
  assertSame(stepsWith(options({ every: 50, totalSteps: 7 }), "meter"), [0, 6], "every > steps");
});

Deno.test("step policy: the probe on the first metered step at or after each multiple, and last", () => {
  const probe = (over: Partial<StepPolicyOptions>) => stepsWith(options(over), "probe");
  assertSame(probe({ totalSteps: 4 }), [0, 1, 2, 3], "every step");
  assertSame(probe({ probeEvery: 5, totalSteps: 12 }), [0, 5, 10, 11], "period 5, last 11");
  // Metered 0, 3, 6, 9, 12, 15, 18, 19: the multiples 5, 10, 15 fall on 6, 12, 15.
  assertSame(probe({ every: 3, probeEvery: 5, totalSteps: 20 }), [0, 6, 12, 15, 19], "every 3");
  // Metering sparser than the period: every metered step probes.
  assertSame(probe({ every: 10, probeEvery: 3, totalSteps: 25 }), [0, 10, 20, 24], "sparse");
  assertSame(probe({ probeEvery: 100, totalSteps: 10 }), [0, 9], "only first and last");
});

Deno.test("step policy: eval mode on metered steps only, never with --eval-every 0", () => {
  const evals = (over: Partial<StepPolicyOptions>) => stepsWith(options(over), "evalMode");
  assertSame(evals({ evalEvery: 0, totalSteps: 30 }), [], "0 = never");
  assertSame(evals({ every: 3, evalEvery: 0, totalSteps: 30 }), [], "0 = never, every 3");
  assertSame(evals({ evalEvery: 5, totalSteps: 12 }), [0, 5, 10], "period 5: not at the last");
  assertSame(evals({ every: 3, evalEvery: 5, totalSteps: 30 }), [0, 6, 12, 15, 21, 27], "every 3");
  assertSame(evals({ every: 4, evalEvery: 2, totalSteps: 10 }), [0, 4, 8], "sparse metering");
});

Deno.test("step policy: checkpoint after every --checkpoint-every steps, never with 0", () => {
  assertSame(
    stepsWith(options({ checkpointEvery: 4, totalSteps: 13 }), "checkpoint"),
    [3, 7, 11],
    "4",
  );
  assertSame(stepsWith(options({ checkpointEvery: 0 }), "checkpoint"), [], "0");
  assertSame(
    stepsWith(options({ checkpointEvery: 1, totalSteps: 3 }), "checkpoint"),
    [0, 1, 2],
    "1",
  );
});

Deno.test("step policy: a norm above the threshold rescales exactly RESCALE_LAG steps later", () => {
  const policy = new StepPolicy(options({ rescaleAbove: 13.07 }));
  // Run A (0) is above too and is never rescaled; C (3) is below.
  for (let t = 0; t < 5; t++) {
    const plan = policy.plan(t);
    assertSame(plan.rescales, [], `before step ${t}`);
    policy.norms(t, t === 4 ? [100, 100, 30, 13] : [100, 1, 1, 1]);
  }
  for (let t = 5; t < 4 + RESCALE_LAG; t++) assertSame(policy.plan(t).rescales, [], `step ${t}`);
  // 100 / 13.07 = 7.65 -> 2^-(3 + 1); 30 / 13.07 = 2.3 -> 2^-(2 + 1).
  const expected = [{ run: 1, factor: 1 / 16 }, { run: 2, factor: 1 / 8 }];
  assertSame(policy.plan(4 + RESCALE_LAG).rescales, expected, "at the lag");
  assertSame(policy.plan(5 + RESCALE_LAG).rescales, [], "once");
});

Deno.test("step policy: norms of steps before an applied rescale decide nothing", () => {
  const policy = new StepPolicy(options({ rescaleAbove: 10, totalSteps: 40 }));
  const at: number[] = [];
  for (let t = 0; t < 20; t++) {
    if (policy.plan(t).rescales.length > 0) at.push(t);
    // Every norm read is above the threshold; runs 2 and 3 show the same.
    if (t <= 12) policy.norms(t, [50, 50, 50, 50]);
  }
  // Step 0's norm rescales before step 3; steps 1 and 2 still show the old scale; step 3's norm
  // is after the rescale and decides again (before 6), and so on.
  assertSame(at, [3, 6, 9, 12, 15], "rescale steps");
  const state = policy.state;
  assertSame(state.rescaleAt, [-1, 15, 15, 15], "rescaleAt");
});

Deno.test("step policy: rescales are decided from norms alone, not from --every or metering", () => {
  const rescalesOf = (every: number) => {
    const o = options({ every, rescaleAbove: 13.07, totalSteps: 30, probeEvery: 7 });
    return drive(o, new StepPolicy(o), new FakeRuns(), 0, 29, "late").map((d) => d.rescales);
  };
  const base = rescalesOf(1);
  if (base.flat().length < 5) throw new Error("the fake runs should rescale several times");
  for (const every of [2, 3, 7]) assertSame(rescalesOf(every), base, `every ${every}`);
});

Deno.test("step policy: a non-finite norm or loss diverges; the earliest step wins", () => {
  const policy = new StepPolicy(options());
  if (policy.diverged !== undefined || policy.divergedAt !== Infinity) throw new Error("fresh");
  policy.norms(5, [1, 1, NaN, 1]);
  assertSame(policy.diverged, "training diverged at step 5: run A1 has S weight norm NaN", "norm");
  policy.losses(7, [Infinity, 1, 1, 1]);
  assertSame(policy.divergedAt, 5, "a later step does not replace it");
  policy.losses(3, [1, -Infinity, NaN, 1]);
  assertSame(policy.diverged, "training diverged at step 3: run B has loss -Infinity", "loss");
  policy.norms(3, [NaN, 1, 1, 1]);
  assertSame(policy.diverged, "training diverged at step 3: run B has loss -Infinity", "first");
  if (!policy.shows(3) || policy.shows(4)) throw new Error("rows up to step 3 are shown");
  // Run A is never rescaled, but its norm still diverges.
  const a = new StepPolicy(options());
  a.norms(0, [Infinity, 1, 1, 1]);
  assertSame(a.diverged, "training diverged at step 0: run A has S weight norm Infinity", "A");
  a.losses(0, [1, 2, 3, 4]);
  if (!a.shows(0) || a.shows(1)) throw new Error("finite losses change nothing");
});

Deno.test("step policy: bad periods are refused (NaN in a checkpoint would not resume)", () => {
  assertThrows(() => new StepPolicy(options({ every: 0 })), "every >= 1");
  assertThrows(() => new StepPolicy(options({ probeEvery: 0 })), "probeEvery >= 1");
  assertThrows(() => new StepPolicy(options({ evalEvery: -1 })), "evalEvery >= 0");
});

/**
 * A stand-in for the trainer: run r's S norm grows by a factor per step (faster for later runs)
 * and shrinks by every rescale applied, as the GPU's would.
 */
class FakeRuns {
  scale = RUNS.map(() => 1);
  norms(step: number): number[] {
    return RUNS.map((_, r) => 6 * (1 + 0.05 * (r + 1)) ** step * this.scale[r]);
  }
}

/**
 * Drives `policy` through steps `from`..`to` as the step stage does, and feeds every norm read
 * by the end (as a snapshot does). "late" feeds each step's norms just before they are due,
 * "eager" right after the step (nothing in flight).
 */
function drive(
  o: StepPolicyOptions,
  policy: StepPolicy,
  runs: FakeRuns,
  from: number,
  to: number,
  feed: "late" | "eager",
): StepDecision[] {
  const queue: { step: number; norms: number[] }[] = [], decisions: StepDecision[] = [];
  const feedUpTo = (step: number) => {
    while (queue.length > 0 && queue[0].step <= step) {
      const { step: t, norms } = queue.shift()!;
      policy.norms(t, norms);
    }
  };
  for (let t = from; t <= to; t++) {
    feedUpTo(policy.normsDueBefore(t));
    const d = policy.plan(t);
    for (const s of d.rescales) runs.scale[s.run] *= s.factor;
    queue.push({ step: t, norms: runs.norms(t) });
    if (feed === "eager") feedUpTo(t);
    if (d.meter) policy.losses(t, RUNS.map(() => 2.3));
    decisions.push(d);
  }
  feedUpTo(Infinity);
  if (policy.diverged !== undefined) throw new Error(`${policy.diverged} (${JSON.stringify(o)})`);
  return decisions;
}

Deno.test("step policy: resumed from its state after any step, it decides the rest the same", () => {
  let cases = 0;
  for (const every of [1, 3, 4]) {
    for (const probeEvery of [1, 5, 7]) {
      for (const evalEvery of [0, 2, 5]) {
        for (const totalSteps of [20, 23]) {
          for (const checkpointEvery of [0, 4]) {
            const o = options({
              every,
              probeEvery,
              evalEvery,
              totalSteps,
              checkpointEvery,
              rescaleAbove: 13.07,
            });
            const what = JSON.stringify({ every, probeEvery, evalEvery, totalSteps });
            const full = new StepPolicy(o);
            const whole = drive(o, full, new FakeRuns(), 0, totalSteps - 1, "late");
            if (whole.flatMap((d) => d.rescales).length < 4) {
              throw new Error(`few rescales ${what}`);
            }
            const eager = drive(o, new StepPolicy(o), new FakeRuns(), 0, totalSteps - 1, "eager");
            assertSame(eager, whole, `nothing in flight, ${what}`);
            for (let k = 0; k < totalSteps - 1; k++) {
              const runs = new FakeRuns(), first = new StepPolicy(o);
              const head = drive(o, first, runs, 0, k, "late");
              // A checkpoint stores the state as JSON.
              const resume = JSON.parse(JSON.stringify(first.state));
              const second = new StepPolicy({ ...o, resume });
              const rest = drive(o, second, runs, k + 1, totalSteps - 1, "late");
              assertSame([...head, ...rest], whole, `resumed after step ${k}, ${what}`);
              assertSame(second.state, full.state, `final state, resumed after ${k}, ${what}`);
              cases++;
            }
          }
        }
      }
    }
  }
  if (cases < 1000) throw new Error(`only ${cases} cases`);
});

Deno.test("step policy: the state resumes field for field, and is a copy", () => {
  const o = options({ rescaleAbove: 10, probeEvery: 5, evalEvery: 3, every: 2 });
  const policy = new StepPolicy(o);
  for (let t = 0; t < 4; t++) {
    policy.plan(t);
    policy.norms(t, [1, 50, 1, 1]);
  }
  const state = policy.state;
  assertSame(state, {
    // Step 0's rescale was applied before step 3; step 3's norm decided the next one.
    scheduled: [{ run: 1, at: 6, factor: 1 / 16 }],
    rescaleAt: [-1, 6, -1, -1],
    nextProbe: 5,
    nextEval: 3,
  }, "state");
  assertSame(Object.keys(state), ["scheduled", "rescaleAt", "nextProbe", "nextEval"], "keys");
  state.scheduled.pop();
  state.rescaleAt[1] = 99;
  assertSame(policy.state.rescaleAt, [-1, 6, -1, -1], "a copy");
  const resumed = new StepPolicy({ ...o, resume: policy.state });
  assertSame(resumed.state, policy.state, "resumed state");
});
