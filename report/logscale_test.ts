/** Log-axis preparation: zeros at a floor or dropped, negatives dropped, the floor's choice. */

import { logFloor, minPositive, prepareLog } from "./logscale.ts";

function assertEquals(a: unknown, b: unknown): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(`${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
  }
}

const pts = [0, 1e-7, -3, 0.5, 0].map((value, step) => ({ step, value }));

Deno.test("zeros are clamped to the floor and counted; negatives are dropped", () => {
  const r = prepareLog(pts, "clamp", 1e-9);
  assertEquals(r.points.map((p) => p.value), [1e-9, 1e-7, 0.5, 1e-9]);
  assertEquals(r.points.map((p) => p.step), [0, 1, 3, 4]);
  assertEquals([r.clamped, r.dropped], [2, 1]);
});

Deno.test("the drop policy leaves out zeros and negatives", () => {
  const r = prepareLog(pts, "drop", 1e-9);
  assertEquals(r.points.map((p) => p.value), [1e-7, 0.5]);
  assertEquals([r.clamped, r.dropped], [0, 3]);
});

Deno.test("the floor is a power of ten a decade below the data and the ceiling", () => {
  assertEquals(minPositive([pts, [{ step: 0, value: 3e-8 }]]), 3e-8);
  assertEquals(logFloor(3e-8, 1e-6), 1e-9);
  assertEquals(logFloor(0.02, 1e-6), 1e-7); // below the lowest threshold line
  assertEquals(logFloor(Infinity, 1e-6), 1e-7); // only zeros: below the ceiling
  assertEquals(logFloor(Infinity), 1e-9); // only zeros, no ceiling
  assertEquals(logFloor(5), 0.1);
});
