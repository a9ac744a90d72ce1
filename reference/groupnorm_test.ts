import type { GroupNormGeometry } from "../core/graph.ts";
import type { Rng } from "../core/prng.ts";
import { assertClose, freshRng } from "../core/test_util.ts";
import { groupNormBackward, groupNormForward } from "./groupnorm.ts";

const random = (rng: Rng, n: number, lo = -1, hi = 1) =>
  Float64Array.from({ length: n }, () => rng.uniform(lo, hi));

/**
 * Central differences (h = 1e-6, error ~1e-9 relative for this smooth function) of
 * loss(v) = Σ w·y(v) with respect to every element of `v`.
 */
function centralDifferences(v: Float64Array, loss: () => number): Float64Array {
  const h = 1e-6;
  return Float64Array.from(v, (x0, i) => {
    v[i] = x0 + h;
    const up = loss();
    v[i] = x0 - h;
    const down = loss();
    v[i] = x0;
    return (up - down) / (2 * h);
  });
}

const maxAbs = (a: ArrayLike<number>) =>
  Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

const SHAPES: GroupNormGeometry[] = [
  { rows: 3, spatial: 5, channels: 6, groups: 3 }, // image, groups > 1
  { rows: 2, spatial: 7, channels: 5, groups: 1 }, // LayerNorm over an image
  { rows: 4, spatial: 1, channels: 9, groups: 1 }, // flat LayerNorm
  { rows: 3, spatial: 1, channels: 12, groups: 4 }, // flat GroupNorm
  { rows: 2, spatial: 3, channels: 4, groups: 4 }, // one channel per group (InstanceNorm)
];

Deno.test("groupNormBackward = central differences of groupNormForward (dx, dgamma, dbeta)", () => {
  const rng = freshRng("groupnorm reference finite differences");
  for (const g of SHAPES) {
    for (const affine of [true, false]) {
      const size = g.rows * g.spatial * g.channels, eps = 1e-3;
      const x = random(rng, size, -2, 2), w = random(rng, size);
      const gamma = random(rng, g.channels, 0.5, 2), beta = random(rng, g.channels);
      const loss = () =>
        groupNormForward(x, g, eps, affine ? gamma : undefined, affine ? beta : undefined).y
          .reduce((s, y, i) => s + w[i] * y, 0);
      const fwd = groupNormForward(
        x,
        g,
        eps,
        affine ? gamma : undefined,
        affine ? beta : undefined,
      );
      const bwd = groupNormBackward(w, fwd, g, affine ? gamma : undefined);
      const what = `${JSON.stringify(g)} affine=${affine}`;
      const check = (analytic: Float64Array, fd: Float64Array, name: string) =>
        assertClose(analytic, fd, 1e-6, 1e-7 * maxAbs(fd), `${what} ${name}`);
      check(bwd.dx, centralDifferences(x, loss), "dx");
      if (affine) {
        check(bwd.dgamma, centralDifferences(gamma, loss), "dgamma");
        check(bwd.dbeta, centralDifferences(beta, loss), "dbeta");
      }
    }
  }
});

Deno.test("groupNormForward with one group on flat rows is LayerNorm (hand-computed)", () => {
  const rng = freshRng("groupnorm reference layernorm");
  const rows = 5, channels = 7, eps = 1e-5;
  const x = random(rng, rows * channels, -3, 3);
  const gamma = random(rng, channels, 0.5, 2), beta = random(rng, channels);
  const out = groupNormForward(x, { rows, spatial: 1, channels, groups: 1 }, eps, gamma, beta);
  for (let n = 0; n < rows; n++) {
    const row = Array.from(x.subarray(n * channels, (n + 1) * channels));
    const mean = row.reduce((a, b) => a + b, 0) / channels;
    const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / channels;
    const expected = row.map((v, c) => gamma[c] * (v - mean) / Math.sqrt(variance + eps) + beta[c]);
    assertClose(
      out.y.subarray(n * channels, (n + 1) * channels),
      expected,
      1e-13,
      1e-13,
      `row ${n}`,
    );
    assertClose([out.mean[n], out.invStd[n]], [mean, 1 / Math.sqrt(variance + eps)], 1e-13, 0, "");
  }
});

Deno.test("groupNormForward is scale invariant with eps 0: y(c·x) = y(x)", () => {
  const rng = freshRng("groupnorm reference scale invariance");
  for (const g of SHAPES) {
    const size = g.rows * g.spatial * g.channels;
    const x = random(rng, size, -2, 2);
    const gamma = random(rng, g.channels, 0.5, 2), beta = random(rng, g.channels);
    const y = groupNormForward(x, g, 0, gamma, beta).y;
    for (const c of [1000, 1e-3, 7.5]) {
      const yc = groupNormForward(x.map((v) => v * c), g, 0, gamma, beta).y;
      assertClose(yc, y, 1e-10, 1e-12, `${JSON.stringify(g)} c=${c}`);
    }
  }
});

Deno.test("groupNorm reference refuses channels that do not split into the groups", () => {
  let threw = false;
  try {
    groupNormForward([1, 2, 3], { rows: 1, spatial: 1, channels: 3, groups: 2 }, 1e-5);
  } catch {
    threw = true;
  }
  if (!threw) throw new Error("3 channels in 2 groups accepted");
});
