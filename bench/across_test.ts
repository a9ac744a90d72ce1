/** The across comparison: float32 judged before its one-ulp twin leaves A, df64 over all steps. */

import { compareLosses } from "./across.ts";
import { assertEquals } from "../stages/data/test_fixtures.ts";

/** Rows of `steps` steps whose losses at step s are `loss(s)` for each run. */
const rows = (steps: number, loss: (run: string, s: number) => number) =>
  Array.from({ length: steps }, (_, s) => ({
    step: s,
    "A.loss": loss("A", s),
    "B.loss": loss("B", s),
    "A1.loss": loss("A1", s),
  }));

Deno.test("compareLosses: the implementations' difference counts only before A1 leaves A", () => {
  // A1 leaves A by 1e-5 at step 4; the sides differ by 1e-7 before, by 1e-3 from step 6.
  const twin = (r: string, s: number) => (r === "A1" && s >= 4 ? 1 + 1e-4 : 1);
  const a = rows(10, twin);
  const b = rows(10, (r, s) => twin(r, s) * (s >= 6 ? 1 + 1e-3 : 1 + 1e-7));
  const c = compareLosses(a, b, 1e-5);
  assertEquals(c.chaosStep, 4, "chaos step");
  assertEquals(c.firstStepOver, 6, "first step over");
  if (Math.abs(c.maxRelBeforeChaos - 1e-7) > 1e-9) throw new Error(`${c.maxRelBeforeChaos}`);
  if (Math.abs(c.maxRelLoss - 1e-3) > 1e-5) throw new Error(`${c.maxRelLoss}`);
  // A difference before chaos is seen, and NaN is infinitely far.
  const early = rows(10, (r, s) => (s === 2 ? 1 + 1e-4 : s === 8 ? NaN : twin(r, s)));
  const d = compareLosses(a, early, 1e-5);
  assertEquals([d.firstStepOver, d.maxRelLoss], [2, Infinity], "early and NaN");
  if (!(d.maxRelBeforeChaos > 9e-5)) throw new Error(`${d.maxRelBeforeChaos}`);
  // Without A1 (df64 jobs) every step is before chaos.
  const noTwin = a.map(({ "A1.loss": _, ...rest }) => rest);
  assertEquals(compareLosses(noTwin, noTwin, 1e-12).chaosStep, null, "no A1");
});
