import {
  add,
  globalAvgPoolBackward,
  globalAvgPoolForward,
  maxPool2Backward,
  maxPool2Forward,
} from "./pool.ts";
import { assertClose, freshRng } from "../core/test_util.ts";
import type { Rng } from "../core/prng.ts";

type Forward = (x: Float64Array) => Float64Array;

/**
 * Central differences of L(x) = <g, forward(x)> for random g, against backward(g, x); returns
 * the worst |fd - analytic| relative to the largest analytic element.
 */
function fdCheck(
  rng: Rng,
  x: Float64Array,
  outLength: number,
  forward: Forward,
  backward: (g: Float64Array, x: Float64Array) => Float64Array,
  what: string,
): void {
  const g = Float64Array.from({ length: outLength }, () => rng.uniform(-1, 1));
  const loss = (v: Float64Array) => forward(v).reduce((s, y, i) => s + g[i] * y, 0);
  const analytic = backward(g, x), h = 1e-6;
  const fd = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    x[i] = v + h;
    const up = loss(x);
    x[i] = v - h;
    const down = loss(x);
    x[i] = v;
    fd[i] = (up - down) / (2 * h);
  }
  const scale = Math.max(...analytic.map(Math.abs));
  // Both poolings are piecewise linear in x, so central differences are exact up to rounding.
  assertClose(fd, analytic, 0, 1e-7 * scale, what);
}

const SHAPES: [number, number, number, number][] = [[1, 3, 3, 1], [2, 5, 3, 3], [3, 7, 5, 2]];

Deno.test("globalAvgPool backward: central differences on odd shapes", () => {
  const rng = freshRng("reference avg pool fd");
  for (const [n, h, w, c] of SHAPES) {
    const x = Float64Array.from({ length: n * h * w * c }, () => rng.uniform(-1, 1));
    fdCheck(
      rng,
      x,
      n * c,
      (v) => globalAvgPoolForward(v, n, h, w, c),
      (g) => globalAvgPoolBackward(g, n, h, w, c),
      `avg ${n}x${h}x${w}x${c}`,
    );
  }
});

Deno.test("maxPool2 backward: central differences on odd shapes (no ties)", () => {
  const rng = freshRng("reference max pool fd");
  for (const [n, h, w, c] of SHAPES) {
    // Distinct values at least 0.01 apart, shuffled: no window is within h of a tie.
    const size = n * h * w * c;
    const x = rng.shuffle(Float64Array.from({ length: size }, (_, i) => (i - size / 2) * 0.01));
    const out = n * Math.floor(h / 2) * Math.floor(w / 2) * c;
    fdCheck(
      rng,
      x,
      out,
      (v) => maxPool2Forward(v, n, h, w, c),
      (g, v) => maxPool2Backward(g, v, n, h, w, c),
      `max ${n}x${h}x${w}x${c}`,
    );
  }
});

Deno.test("maxPool2: first maximum in row-major window order; trailing row/column ignored", () => {
  // One 3×3×1 image: the only window is rows 0-1, columns 0-1.
  const cases: [number[], number][] = [
    [[5, 5, 9, 5, 5, 9, 9, 9, 9], 0], // all tied: (0, 0)
    [[1, 4, 9, 4, 2, 9, 9, 9, 9], 1], // (0, 1) and (1, 0) tie: (0, 1)
    [[1, 2, 9, 4, 4, 9, 9, 9, 9], 3], // (1, 0) and (1, 1) tie: (1, 0)
    [[1, 2, 9, 3, 7, 9, 9, 9, 9], 4], // unique maximum at (1, 1)
  ];
  for (const [x, arg] of cases) {
    const y = maxPool2Forward(x, 1, 3, 3, 1);
    if (y.length !== 1 || y[0] !== x[arg]) throw new Error(`forward ${x}: ${y}`);
    const dx = maxPool2Backward([2.5], x, 1, 3, 3, 1);
    const expect = new Float64Array(9);
    expect[arg] = 2.5;
    assertClose(dx, expect, 0, 0, `backward ${x}`);
  }
  // Channels are independent: channel 1 of the same positions picks its own argmax.
  const x = [1, 3, 2, 3, 3, 0, 0, 1]; // 1×2×2×2: channel 0 = 1,2,3,0; channel 1 = 3,3,0,1
  assertClose(maxPool2Forward(x, 1, 2, 2, 2), [3, 3], 0, 0, "two channels forward");
  assertClose(
    maxPool2Backward([1, 2], x, 1, 2, 2, 2),
    [0, 2, 0, 0, 1, 0, 0, 0],
    0,
    0,
    "two channels backward",
  );
});

Deno.test("globalAvgPool and add: small exact cases", () => {
  // 1×2×2×2: channel 0 = 1, 2, 3, 4; channel 1 = -1, 0, 1, 8.
  const x = [1, -1, 2, 0, 3, 1, 4, 8];
  assertClose(globalAvgPoolForward(x, 1, 2, 2, 2), [2.5, 2], 0, 0, "avg forward");
  assertClose(
    globalAvgPoolBackward([4, -8], 1, 2, 2, 2),
    [1, -2, 1, -2, 1, -2, 1, -2],
    0,
    0,
    "avg backward",
  );
  assertClose(add([1, 2, -3], [0.5, -2, 3]), [1.5, 0, 0], 0, 0, "add");
});
