import { assertThrows } from "./test_util.ts";
import {
  closedFormAlpha,
  closedFormEtaB,
  constantSchedule,
  ExpLrRecursion,
  lrAt,
  type LrScheduleSpec,
  matchedBufferFactor,
  milestoneNotes,
  milestoneStep,
  scheduleUsesLength,
} from "./schedule.ts";

const CONST: LrScheduleSpec = constantSchedule(0.1, 500);

function assertNear(actual: number, expected: number, rtol: number, what: string): void {
  if (!(Math.abs(actual - expected) <= rtol * Math.abs(expected))) {
    throw new Error(`${what}: ${actual}, expected ${expected} (rtol ${rtol})`);
  }
}

/** THEORY §3's recursion written literally (k, r), to check the streaming form against. */
function literalRecursion(etas: number[], lambda: number, gamma: number) {
  let kPrev = 1, c = 1;
  return etas.map((eta, t) => {
    const r = t === 0 ? 1 : eta / etas[t - 1];
    const k = 1 / (1 + gamma * r * (1 - kPrev) - eta * lambda);
    const out = { etaB: c * (k * c) * eta, c, cNext: k * c };
    kPrev = k;
    c *= k;
    return out;
  });
}

Deno.test("lrAt: constant, step with step and fraction milestones", () => {
  for (const t of [0, 1, 499, 1000]) assertNear(lrAt(CONST, t), 0.1, 0, `const ${t}`);
  const step = { ...CONST, kind: "step" as const, milestones: [0.5, 400] };
  const expect: [number, number][] = [[0, 0.1], [249, 0.1], [250, 0.01], [399, 0.01], [400, 1e-3]];
  for (const [t, lr] of expect) assertNear(lrAt(step, t), lr, 1e-15, `step ${t}`);
  // 0.3 * 7 = 2.1 rounds to step 2.
  const frac = { ...step, milestones: [0.3], totalSteps: 7 };
  assertNear(lrAt(frac, 1), 0.1, 0, "fraction before");
  assertNear(lrAt(frac, 2), 0.01, 1e-15, "fraction at");
});

Deno.test("lrAt: cosine reaches base*minFactor at totalSteps and stays", () => {
  const cos = { ...CONST, kind: "cosine" as const, minFactor: 0.01, totalSteps: 100 };
  assertNear(lrAt(cos, 0), 0.1, 1e-15, "cosine 0");
  assertNear(lrAt(cos, 50), 0.1 * (0.01 + 0.99 * 0.5), 1e-15, "cosine half");
  assertNear(lrAt(cos, 25), 0.1 * (0.01 + 0.99 * 0.5 * (1 + Math.SQRT1_2)), 1e-15, "cosine 25");
  assertNear(lrAt(cos, 100), 0.001, 1e-15, "cosine end");
  assertNear(lrAt(cos, 150), 0.001, 1e-15, "cosine after");
});

Deno.test("lrAt: linear warm-up composes with the schedule", () => {
  const warm = { ...CONST, warmupSteps: 10, warmupStartFactor: 0.1 };
  assertNear(lrAt(warm, 0), 0.01, 1e-15, "warm-up 0");
  assertNear(lrAt(warm, 5), 0.1 * 0.55, 1e-15, "warm-up 5");
  assertNear(lrAt(warm, 10), 0.1, 0, "warm-up end");
  const cos = { ...warm, kind: "cosine" as const, minFactor: 0, totalSteps: 20 };
  const sched = 0.1 * 0.5 * (1 + Math.cos(Math.PI * 4 / 20));
  assertNear(lrAt(cos, 4), sched * (0.1 + 0.9 * 0.4), 1e-15, "warm-up cosine 4");
  const step = { ...warm, kind: "step" as const, milestones: [3], factor: 0.5 };
  assertNear(lrAt(step, 3), 0.05 * (0.1 + 0.9 * 0.3), 1e-15, "warm-up step 3");
  assertNear(lrAt({ ...warm, warmupStartFactor: 0 }, 0), 0, 0, "warm-up from 0");
});

Deno.test("lrAt: invalid schedules throw", () => {
  assertThrows(() => lrAt({ ...CONST, base: 0 }, 0), "base lr");
  assertThrows(() => lrAt({ ...CONST, kind: "step", milestones: [1.5] }, 0), "milestone 1.5");
  assertThrows(
    () => lrAt({ ...CONST, kind: "step", milestones: [0.5], totalSteps: 0 }, 0),
    "fraction milestone",
  );
  assertThrows(() => lrAt({ ...CONST, kind: "cosine", totalSteps: 0 }, 0), "cosine needs");
  assertThrows(() => lrAt({ ...CONST, warmupSteps: 2.5 }, 0), "warm-up steps");
});

Deno.test("closedFormAlpha solves its quadratic; gamma = 0 gives 1 - lambda*eta", () => {
  for (const [eta, lambda, gamma] of [[0.1, 5e-4, 0.9], [0.5, 1e-2, 0.5], [0.1, 1e-4, 0.99]]) {
    const a = closedFormAlpha(eta, lambda, gamma);
    const residual = a * a - (1 + gamma - lambda * eta) * a + gamma;
    if (!(Math.abs(residual) < 1e-15)) throw new Error(`residual ${residual}`);
    const other = gamma / a; // product of the roots is gamma
    if (!(a > other && a < 1)) throw new Error(`alpha ${a} is not the larger root in (0, 1)`);
  }
  assertNear(closedFormAlpha(0.1, 5e-4, 0), 1 - 5e-5, 1e-16, "gamma 0");
  assertThrows(() => closedFormAlpha(1, 5, 0.9), "no positive real root");
});

Deno.test("recursion equals the closed form for gamma = 0 (no buffer to match)", () => {
  const eta = 0.1, lambda = 5e-3, alpha = closedFormAlpha(eta, lambda, 0);
  const rec = new ExpLrRecursion(0);
  let worst = 0;
  for (let t = 0; t < 500; t++) {
    const s = rec.next(eta, lambda);
    const etaB = closedFormEtaB(eta, alpha, t);
    worst = Math.max(worst, Math.abs(s.etaB / etaB - 1), Math.abs(s.c * alpha ** t - 1));
  }
  // Measured: 5.8e-14, the rounding of alpha raised to the 500th power (c_500 = 12.2).
  if (!(worst < 1e-13)) throw new Error(`gamma 0: relative difference ${worst}`);
});

Deno.test("recursion with the matched initial buffer equals the closed form", () => {
  for (const [eta, lambda, gamma] of [[0.1, 5e-4, 0.9], [0.1, 1e-2, 0.9], [0.3, 1e-3, 0.5]]) {
    const alpha = closedFormAlpha(eta, lambda, gamma);
    const rec = new ExpLrRecursion(gamma, matchedBufferFactor(eta, alpha));
    let worst = 0;
    for (let t = 0; t < 500; t++) {
      const s = rec.next(eta, lambda);
      worst = Math.max(worst, Math.abs(s.etaB / closedFormEtaB(eta, alpha, t) - 1));
      worst = Math.max(worst, Math.abs(s.cNext * alpha ** (t + 1) - 1));
    }
    // Measured: at most 4.6e-14 (c_500 up to 2.2e4 for wd 1e-2).
    if (!(worst < 1e-12)) throw new Error(`matched (${eta}, ${lambda}, ${gamma}): ${worst}`);
  }
});

Deno.test("zero-buffer recursion: k_t differs early and converges to 1/alpha", () => {
  const eta = 0.1, lambda = 5e-4, gamma = 0.9, alpha = closedFormAlpha(eta, lambda, gamma);
  const rec = new ExpLrRecursion(gamma);
  const ks: number[] = [];
  for (let t = 0; t < 500; t++) {
    const s = rec.next(eta, lambda);
    ks.push(s.cNext / s.c);
  }
  // k_0 = 1/(1 - eta*lambda) grows 10x slower than 1/alpha (the buffers are still empty).
  assertNear(ks[0], 1 / (1 - eta * lambda), 1e-15, "k_0");
  if (!(Math.abs(ks[0] * alpha - 1) > 1e-4)) throw new Error(`k_0 ${ks[0]} too close to 1/alpha`);
  // Converges like (beta/alpha)^t = 0.9^t: measured |k_499 alpha - 1| = 2.2e-16.
  if (!(Math.abs(ks[499] * alpha - 1) < 1e-14)) throw new Error(`k_499 ${ks[499]}`);
});

Deno.test("streaming recursion agrees with THEORY's literal (k, r) recursion", () => {
  const specs: LrScheduleSpec[] = [
    CONST,
    { ...CONST, kind: "step", milestones: [0.5, 0.75] },
    { ...CONST, kind: "cosine", minFactor: 0 },
    { ...CONST, kind: "step", milestones: [0.5], warmupSteps: 50, warmupStartFactor: 0.1 },
  ];
  for (const spec of specs) {
    const etas = Array.from({ length: 500 }, (_, t) => lrAt(spec, t));
    const literal = literalRecursion(etas, 5e-3, 0.9);
    const rec = new ExpLrRecursion(0.9);
    let worst = 0;
    etas.forEach((eta, t) => {
      const s = rec.next(eta, 5e-3);
      worst = Math.max(worst, Math.abs(s.etaB / literal[t].etaB - 1));
      worst = Math.max(worst, Math.abs(s.cNext / literal[t].cNext - 1));
    });
    // Measured: at most 9e-13; the literal form loses that much in 1 - k_{t-1} (against a
    // 60-digit computation the streaming form is within 1e-15, the literal one 3e-13).
    if (!(worst < 1e-12)) throw new Error(`${spec.kind}: relative difference ${worst}`);
  }
  // The streaming form also takes a warm-up from lr 0, where r_1 = eta_1/0 breaks the literal one.
  const rec = new ExpLrRecursion(0.9);
  const first = rec.next(0, 5e-4);
  if (first.c !== 1 || first.cNext !== 1 || first.etaB !== 0) throw new Error("lr 0 step");
  if (!Number.isFinite(rec.next(0.01, 5e-4).etaB)) throw new Error("after lr 0");
});

Deno.test("milestoneNotes: milestones on one step (a fraction included) and past the end are named", () => {
  const spec = { ...constantSchedule(0.1, 10), kind: "step" as const, milestones: [1, 0.5, 5, 40] };
  const notes = milestoneNotes(spec);
  if (notes.length !== 2 || !notes[0].includes("2 milestones fall on step 5")) {
    throw new Error(notes.join(" | "));
  }
  if (!notes[1].includes("step 40 is not reached in 10 steps")) throw new Error(notes[1]);
  if (milestoneNotes({ ...spec, milestones: [2, 0.5] }).length !== 0) throw new Error("distinct");
});

Deno.test("milestoneStep: fractions of the run rounded to a step, step indices as they are", () => {
  const got = [milestoneStep(0.5, 9), milestoneStep(0.25, 10), milestoneStep(3, 10)];
  if (got.join() !== "5,3,3") throw new Error(`steps ${got}`);
  if (milestoneStep(0.5, null) !== null || milestoneStep(4, null) !== 4) {
    throw new Error("a fraction needs the run's length; a step index does not");
  }
});

Deno.test("scheduleUsesLength: cosine, or a step schedule with a fraction milestone", () => {
  const got = [
    scheduleUsesLength("cosine", []),
    scheduleUsesLength("step", [0.5, 10]),
    scheduleUsesLength("step", [10, 20]),
    scheduleUsesLength("const", [0.5]),
  ];
  if (got.join() !== "true,true,false,false") throw new Error(`uses length ${got}`);
});
