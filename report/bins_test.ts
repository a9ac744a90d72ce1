/** The min/max reduction: bounded bins, extremes kept, one point per column and extreme. */

import { MinMaxBins } from "./bins.ts";

function assert(cond: boolean, msg: string): void {
  if (!cond) throw new Error(msg);
}

Deno.test("a single spike in a million points survives the reduction", () => {
  const bins = new MinMaxBins(920);
  for (let s = 0; s < 1_000_000; s++) bins.add(s, s === 654_321 ? 1e3 : 1 + 1e-3 * Math.sin(s));
  const pts = bins.points(460, 0, 999_999);
  assert(pts.length <= 2 * 460, `${pts.length} points for 460 columns`);
  const spike = pts.filter((p) => p.value === 1e3);
  assert(spike.length === 1 && spike[0].step === 654_321, `spike: ${JSON.stringify(spike)}`);
  assert(bins.width === 2048, `bin width ${bins.width}`);
  assert(bins.count === 1_000_000, `count ${bins.count}`);
});

Deno.test("each pixel column keeps its minimum and maximum, in step order", () => {
  const values: number[] = [];
  let x = 0.5;
  for (let s = 0; s < 5000; s++) values.push(x = (x * 3.7 * (1 - x)) % 1);
  const bins = new MinMaxBins(200);
  values.forEach((v, s) => bins.add(s, v));
  const pts = bins.points(100, 0, 4999);
  // Every point is a real (step, value) pair of the input, in increasing step order.
  for (let i = 0; i < pts.length; i++) {
    assert(values[pts[i].step] === pts[i].value, `point ${i} is not an input point`);
    if (i > 0) assert(pts[i].step > pts[i - 1].step, `points out of order at ${i}`);
  }
  // The global extremes are among them.
  const max = Math.max(...values), min = Math.min(...values);
  assert(pts.some((p) => p.value === max) && pts.some((p) => p.value === min), "extremes lost");
  assert(pts.length <= 200, `${pts.length} points`);
});

Deno.test("few points are returned as they are; non-finite values are counted, not drawn", () => {
  const bins = new MinMaxBins(16);
  [3, NaN, 1, Infinity, 2].forEach((v, s) => bins.add(10 + s, v));
  const pts = bins.points(460, 10, 14);
  assert(
    JSON.stringify(pts) === JSON.stringify([
      { step: 10, value: 3 },
      { step: 12, value: 1 },
      { step: 14, value: 2 },
    ]),
    JSON.stringify(pts),
  );
  assert(bins.nonFinite === 2 && bins.count === 3, `${bins.nonFinite} ${bins.count}`);
});

Deno.test("sparse steps (every 10th) and a late start bin from the first step", () => {
  const bins = new MinMaxBins(8);
  for (let s = 5000; s < 5100; s += 10) bins.add(s, s);
  const pts = bins.points(4, 5000, 5090);
  assert(pts[0].step === 5000 && pts[pts.length - 1].step === 5090, JSON.stringify(pts));
  assert(pts.length <= 8, `${pts.length}`);
});
