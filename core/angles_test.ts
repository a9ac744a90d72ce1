import { angleFromDistance2, angleFromSums } from "./angles.ts";

/** The float64 sums the optimizer reduces, of vectors a and b. */
function sums(a: number[], b: number[]): [number, number, number, number] {
  let diff2 = 0, diffSum = 0, a2 = 0, b2 = 0;
  a.forEach((x, i) => {
    const d = x - b[i];
    diff2 += d * d;
    diffSum += d * (x + b[i]);
    a2 += x * x;
    b2 += b[i] * b[i];
  });
  return [diff2, diffSum, a2, b2];
}

Deno.test("angleFromSums: angles down to 1e-9 between vectors whose norms differ by 1e-4", () => {
  for (const angle of [1, 1e-3, 1e-6, 1e-9]) {
    // a and b = |b| (cos θ â + sin θ ê), ê ⊥ â: the angle is θ.
    const a = [1, 2, 2], e = [2, 1, -2], norm = 3 * (1 + 1e-4);
    const b = a.map((x, i) => norm * (Math.cos(angle) * x / 3 + Math.sin(angle) * e[i] / 3));
    const got = angleFromSums(...sums(a, b));
    if (!(Math.abs(got / angle - 1) < 1e-6)) throw new Error(`angle ${angle}: got ${got}`);
  }
  if (angleFromSums(...sums([1, 2], [2, 4])) !== 0) throw new Error("parallel vectors");
});

Deno.test("angleFromDistance2: 2 asin(d/2), clamped to [0, π]", () => {
  if (angleFromDistance2(-1e-30) !== 0) throw new Error("a negative rounding is angle 0");
  if (Math.abs(angleFromDistance2(4) - Math.PI) > 1e-15) throw new Error("opposite vectors");
  if (Math.abs(angleFromDistance2(2) - Math.PI / 2) > 1e-15) throw new Error("orthogonal");
});
