import { assertThrows } from "./test_util.ts";
import { testRunsSpec } from "./test_fixtures.ts";
import { RunPlan, type RunsSpec, type RunStep, ULP32 } from "./runs.ts";
import { closedFormAlpha, ExpLrRecursion, lrAt, matchedBufferFactor } from "./schedule.ts";

const SPEC: RunsSpec = testRunsSpec({
  runs: ["A", "B", "A1", "A2", "C"],
  schedule: {
    base: 0.1,
    kind: "step",
    milestones: [0.5],
    factor: 0.1,
    minFactor: 0,
    warmupSteps: 5,
    warmupStartFactor: 0.1,
    totalSteps: 40,
  },
});

function near(a: number, e: number, what: string, rtol = 1e-15): void {
  if (!(Math.abs(a - e) <= rtol * Math.abs(e))) throw new Error(`${what}: ${a}, expected ${e}`);
}

function steps(plan: RunPlan, n: number): RunStep[][] {
  return Array.from({ length: n }, () => plan.next());
}

Deno.test("RunPlan: per-run values of every step (exact ExpLR, eps scaled)", () => {
  const plan = new RunPlan(SPEC);
  const rec = new ExpLrRecursion(0.9);
  const ex = [1, 1, 1 + ULP32, 1, 1];
  ex.forEach((e, r) => near(plan.initialWeightScale(r), e, `init scale ${r}`, 0));
  for (let r = 0; r < 5; r++) near(plan.initialBufferFactor(r), 0, `buffer ${r}`, 0);
  for (let t = 0; t < 40; t++) {
    if (plan.step !== t) throw new Error(`step counter ${plan.step}, expected ${t}`);
    const [a, b, a1, a2, c] = plan.next();
    const eta = lrAt(SPEC.schedule, t), explr = rec.next(eta, SPEC.wd);
    for (const [name, s] of [["A", a], ["A1", a1], ["A2", a2]] as const) {
      near(s.lrS, eta, `${name} lrS ${t}`, 0);
      near(s.wdS, 5e-3, `${name} wdS`, 0);
      near(s.shrinkS, 0, `${name} shrinkS`, 0);
      near(s.eps, 1e-5, `${name} eps`, 0);
      near(s.epsNext, 1e-5, `${name} epsNext`, 0);
      near(s.cPred, 1, `${name} cPred`, 0);
      near(s.cPredBefore, 1, `${name} cPredBefore`, 0);
      near(s.perturb, name === "A2" ? ULP32 : 0, `${name} perturb`, 0);
    }
    near(b.lrS, explr.etaB, `B lrS ${t}`, 0);
    near(b.wdS, 0, "B wdS", 0);
    near(b.eps, 1e-5 * explr.c ** 2, `B eps ${t}`);
    near(b.epsNext, 1e-5 * explr.cNext ** 2, `B epsNext ${t}`);
    near(b.cPredBefore, explr.c, `B cPredBefore ${t}`, 0);
    near(b.cPred, explr.cNext, `B cPred ${t}`, 0);
    near(c.lrS, 0.1, "C lrS", 0);
    near(c.wdS, 0, "C wdS", 0);
    if (!Number.isNaN(c.cPred) || !Number.isNaN(c.cPredBefore)) throw new Error("C predicts");
    for (const s of [a, b, a1, a2, c]) {
      near(s.lrO, 0.05, "lrO", 0);
      near(s.wdO, 1e-4, "wdO", 0);
      near(s.shrinkO, 0, "shrinkO", 0);
      near(s.momentum, 0.9, "momentum", 0);
      near(s.rescale, 1, "rescale", 0);
    }
  }
});

Deno.test("RunPlan: c_t bookkeeping chains (cPredBefore of t+1 = cPred of t)", () => {
  const plan = new RunPlan(SPEC);
  let prev = plan.next()[1];
  near(prev.cPredBefore, 1, "c_0", 0);
  near(prev.eps, 1e-5, "eps_0", 0);
  for (let t = 1; t < 40; t++) {
    const b = plan.next()[1];
    near(b.cPredBefore, prev.cPred, `c_${t}`, 0);
    near(b.eps, prev.epsNext, `eps_${t}`, 0);
    prev = b;
  }
  if (!(prev.cPred > 1.05)) throw new Error(`c_40 = ${prev.cPred}: the schedule barely moved`);
});

Deno.test("RunPlan: eps fixed is plain eps for every run", () => {
  const plan = new RunPlan({ ...SPEC, bnEpsMode: "fixed" });
  for (const s of steps(plan, 10).flat()) {
    near(s.eps, 1e-5, "eps", 0);
    near(s.epsNext, 1e-5, "epsNext", 0);
  }
});

Deno.test("RunPlan: Lemma-2 rescale bookkeeping", () => {
  const plain = steps(new RunPlan(SPEC), 12);
  const plan = new RunPlan(SPEC);
  const s = 2 ** -8;
  const got = steps(plan, 3);
  plan.requestRescale(1, s);
  plan.requestRescale(4, 2);
  plan.requestRescale(2, 4);
  plan.requestRescale(2, 0.5); // pending factors multiply: A1 by 2 in total
  got.push(...steps(plan, 4));
  plan.requestRescale(1, s);
  got.push(...steps(plan, 5));
  got.forEach((run, t) => {
    const [a, b, a1, , c] = run, [pa, pb, pa1, , pc] = plain[t];
    const sb = t < 3 ? 1 : t < 7 ? s : s * s;
    const sa1 = t < 3 ? 1 : 2, sc = t < 3 ? 1 : 2;
    near(b.rescale, t === 3 || t === 7 ? s : 1, `B rescale ${t}`, 0);
    near(a1.rescale, t === 3 ? 2 : 1, `A1 rescale ${t}`, 0);
    near(c.rescale, t === 3 ? 2 : 1, `C rescale ${t}`, 0);
    near(a.rescale, 1, `A rescale ${t}`, 0);
    near(b.lrS, pb.lrS * sb * sb, `B lrS ${t}`, 0);
    near(b.eps, pb.eps * sb * sb, `B eps ${t}`, 0);
    near(b.epsNext, pb.epsNext * sb * sb, `B epsNext ${t}`, 0);
    near(b.cPred, pb.cPred * sb, `B cPred ${t}`, 0);
    near(b.cPredBefore, pb.cPredBefore * sb, `B cPredBefore ${t}`, 0);
    near(a1.lrS, pa1.lrS * sa1 * sa1, `A1 lrS ${t}`, 0);
    near(a1.wdS, pa1.wdS / (sa1 * sa1), `A1 wdS ${t}`, 0);
    near(a1.eps, pa1.eps * sa1 * sa1, `A1 eps ${t}`, 0);
    near(a1.cPred, sa1, `A1 cPred ${t}`, 0);
    near(c.lrS, pc.lrS * sc * sc, `C lrS ${t}`, 0);
    for (const [x, y] of [[a, pa], [b, pb], [a1, pa1], [c, pc]]) {
      near(x.lrO, y.lrO, "lrO unchanged", 0);
      near(x.wdO, y.wdO, "wdO unchanged", 0);
    }
    near(a.lrS, pa.lrS, "A unchanged", 0);
  });
});

Deno.test("RunPlan: decoupled weight decay shrinks S of A, A1, A2 only", () => {
  const plan = new RunPlan({ ...SPEC, runs: ["A", "A1", "A2", "C"], wdStyle: "decoupled" });
  plan.requestRescale(1, 2);
  for (const [a, a1, a2, c] of steps(plan, 5)) {
    for (const s of [a, a1, a2]) {
      near(s.wdS, 0, "wdS", 0);
      near(s.shrinkS, 5e-3, "shrinkS", 0);
      near(s.wdO, 1e-4, "wdO coupled", 0);
      near(s.shrinkO, 0, "shrinkO", 0);
    }
    near(c.shrinkS, 0, "C shrinkS", 0);
    near(a1.lrS, 4 * a.lrS, "A1 rescaled lr", 0);
  }
});

Deno.test("RunPlan: closed form and closed-zero", () => {
  const base = { ...SPEC, schedule: { ...SPEC.schedule, kind: "const" as const, warmupSteps: 0 } };
  const alpha = closedFormAlpha(0.1, 5e-3, 0.9);
  for (const explr of ["closed", "closed-zero"] as const) {
    const plan = new RunPlan({ ...base, explr });
    const factor = explr === "closed" ? matchedBufferFactor(0.1, alpha) : 0;
    near(plan.initialBufferFactor(1), factor, `${explr} buffer`, 0);
    near(plan.initialBufferFactor(0), 0, `${explr} A buffer`, 0);
    steps(plan, 20).forEach(([, b], t) => {
      near(b.lrS, 0.1 * alpha ** (-2 * t - 1), `${explr} lrS ${t}`, 1e-14);
      near(b.cPredBefore, alpha ** -t, `${explr} c ${t}`, 1e-14);
      near(b.epsNext, 1e-5 * alpha ** (-2 * t - 2), `${explr} epsNext ${t}`, 1e-14);
    });
  }
  if (!(matchedBufferFactor(0.1, alpha) < 0)) throw new Error("matched buffer should oppose w_0");
});

Deno.test("RunPlan: invalid specs and requests throw", () => {
  assertThrows(() => new RunPlan({ ...SPEC, runs: ["B", "A"] }), "must start with A");
  assertThrows(() => new RunPlan({ ...SPEC, runs: ["A", "B", "B"] }), "duplicate");
  assertThrows(() => new RunPlan({ ...SPEC, runs: [] }), "must start with A");
  assertThrows(() => new RunPlan({ ...SPEC, explr: "closed" }), "needs explr exact");
  assertThrows(
    () =>
      new RunPlan({
        ...SPEC,
        explr: "closed-zero",
        schedule: { ...SPEC.schedule, kind: "const" },
      }),
    "5 warm-up steps",
  );
  assertThrows(() => new RunPlan({ ...SPEC, wdStyle: "decoupled" }), "needs wdStyle coupled");
  assertThrows(() => new RunPlan({ ...SPEC, momentum: 1 }), "momentum");
  assertThrows(() => new RunPlan({ ...SPEC, wd: -1 }), "wd -1");
  // Without B, B's constraints do not apply.
  new RunPlan({ ...SPEC, runs: ["A", "C"], explr: "closed", wdStyle: "decoupled" }).next();
  const plan = new RunPlan(SPEC);
  assertThrows(() => plan.requestRescale(0, 0.5), "run A is the reference");
  assertThrows(() => plan.requestRescale(1, 0.3), "not a power of two");
  assertThrows(() => plan.requestRescale(1, 0), "not a power of two");
  assertThrows(() => plan.requestRescale(7, 2), "no run 7");
  assertThrows(() => plan.initialWeightScale(5), "no run 5");
});

Deno.test("RunPlan: with Lemma-2 rescales run B's values stay finite over 200,000 steps", () => {
  for (const explr of ["exact", "closed"] as const) {
    const spec: RunsSpec = {
      ...SPEC,
      runs: ["A", "B"],
      explr,
      schedule: { ...SPEC.schedule, kind: "const", warmupSteps: 0, totalSteps: 200_000 },
    };
    const plan = new RunPlan(spec);
    let rescales = 0;
    for (let t = 0; t < 200_000; t++) {
      const b = plan.next()[1];
      for (const v of [b.lrS, b.eps, b.epsNext, b.cPred]) {
        if (!(Number.isFinite(v) && v > 0)) {
          throw new Error(`${explr} step ${t}: ${JSON.stringify(b)}`);
        }
      }
      // The step stage's policy: bring c back under 2^16 by a power of two.
      if (b.cPred > 2 ** 16) (plan.requestRescale(1, 2 ** -16), rescales++);
    }
    // c grows like e^{lr wd t / (1 - momentum)} = e^1000: about 90 rescales by 2^-16.
    if (rescales < 80) throw new Error(`${explr}: only ${rescales} rescales`);
  }
});

Deno.test("RunPlan: a plan restored from a JSON copy of its state continues exactly", () => {
  for (const explr of ["exact", "closed"] as const) {
    const spec = explr === "exact" ? SPEC : {
      ...SPEC,
      explr,
      schedule: { ...SPEC.schedule, kind: "const" as const, warmupSteps: 0 },
    };
    const whole = new RunPlan(spec), first = new RunPlan(spec);
    const rescaleAt = (plan: RunPlan, t: number) => {
      if (t === 7) plan.requestRescale(1, 0.25);
      if (t === 19) plan.requestRescale(4, 0.5);
    };
    const expected: RunStep[][] = [];
    for (let t = 0; t < 40; t++) {
      rescaleAt(whole, t);
      expected.push(whole.next());
    }
    for (let t = 0; t < 19; t++) {
      rescaleAt(first, t);
      first.next();
    }
    // A rescale requested but not yet applied is part of the state.
    rescaleAt(first, 19);
    const resumed = new RunPlan(spec);
    resumed.restore(JSON.parse(JSON.stringify(first.state)));
    if (resumed.step !== 19) throw new Error(`resumed at step ${resumed.step}`);
    for (let t = 19; t < 40; t++) {
      const got = JSON.stringify(resumed.next()), want = JSON.stringify(expected[t]);
      if (got !== want) throw new Error(`${explr}: step ${t}: ${got} != ${want}`);
    }
  }
});

Deno.test("RunPlan: restore refuses a state of another run set", () => {
  const state = new RunPlan(SPEC).state;
  const other = new RunPlan({ ...SPEC, runs: ["A", "A1"] });
  assertThrows(() => other.restore(state), "runs");
});
