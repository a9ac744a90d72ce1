import { foldOnset, noOnsets, ONSET_KEYS, type Onsets } from "./onsets.ts";

Deno.test("foldOnset: first step above each threshold, largest and last value; NaN is no distance", () => {
  const o: Onsets = { above: noOnsets(), max: null, final: null };
  if (ONSET_KEYS.join() !== "1e-6,1e-4,1e-2") throw new Error(`keys ${ONSET_KEYS}`);
  for (const [step, d] of [[0, 0], [5, NaN], [10, 2e-6], [20, 0.5], [30, 1e-3]]) {
    foldOnset(o, step, d);
  }
  const want = { above: { "1e-6": 10, "1e-4": 20, "1e-2": 20 }, max: 0.5, final: 1e-3 };
  if (JSON.stringify(o) !== JSON.stringify(want)) throw new Error(JSON.stringify(o));
  foldOnset(o, 40, NaN);
  if (o.final !== null || o.max !== 0.5) throw new Error(`after NaN: ${JSON.stringify(o)}`);
});
