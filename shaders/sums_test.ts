import {
  type Gpu,
  poison,
  readReals,
  realBuffer,
  runDispatches,
  uploadReals,
  view,
} from "./gpu.ts";
import { gpuTest, randomReals } from "./test_gpu.ts";
import { dot, normalizedDistance } from "../reference/ops.ts";
import type { Rng } from "../core/prng.ts";
import { assertClose, freshRng } from "../core/test_util.ts";
import { decodeReals, encodeReals, type Precision } from "./precision.ts";
import { CHUNK, chunkTable, fusedSums } from "./sums.ts";

Deno.test("chunkTable: chunks of at most CHUNK, never across a tensor; each tensor's first chunk", () => {
  const t = chunkTable([CHUNK + 1, 3, 2 * CHUNK]);
  const starts = [0, CHUNK, CHUNK + 1, CHUNK + 4, 2 * CHUNK + 4, 3 * CHUNK + 4];
  const firsts = [0, 2, 3, 5];
  if (t.join() !== [...starts, ...firsts].join()) throw new Error(`table ${t}`);
});

/** `values` rounded to what `precision` holds, so the reference sees what the GPU reads. */
function held(precision: Precision, values: Float64Array): Float64Array {
  return Float64Array.from(decodeReals(precision, encodeReals(precision, values).buffer));
}

/**
 * Tolerances of each precision against the float64 reference:
 * - `sum`: relative, for sums of squares (no cancellation) and, times Σ|a·b|, for dot products:
 *   each sum is ~40 additions deep, of 2^-24 each in f32 and ~2^-47 in df64, with room in df64
 *   for the reference's own naive float64 sum (~sqrt(n)·2^-53);
 * - `distance(d)`: [rtol, atol] of a distance d = |â - b̂|². f32: as measured before (the
 *   distance is exact to its own size, not to |a|'s). df64: each unit vector â is off by ~1e-14
 *   (its norm's and its products' rounding, GPU's and reference's), which moves d by
 *   ~2·sqrt(d)·1e-14 (+ 1e-28); 10 times that, and 1e-12 relative where d is not tiny
 *   (measured: up to 9e-12 relative at d ~ 3e-11, 1e-5 noise).
 */
const TOLERANCE = {
  f32: { sum: 5e-7, distance: (_d: number) => [2e-3, 1e-13] },
  df64: { sum: 1e-12, distance: (d: number) => [1e-12, 2e-13 * Math.sqrt(d) + 1e-26] },
} as const;

/**
 * The trainer's gradient and weight metrics on `runs` runs of S = `segments`: 3 sums + layer
 * norms, 2 sums, then 2 distances, into one poisoned metrics buffer; run 1 is near-parallel to
 * run 0 (1e-4 noise), run 2 exactly 4 times run 0 (distance exactly 0).
 */
async function check(
  gpu: Gpu,
  rng: Rng,
  precision: "f32" | "df64",
  runs: number,
  segments: number[],
): Promise<void> {
  const S = segments.reduce((a, b) => a + b, 0), L = segments.length;
  const P = S + 13; // S first, then other parameters, as in the trainer's layout
  const w0 = randomReals(rng, precision, runs * P), g = randomReals(rng, precision, runs * P);
  const prev0 = randomReals(rng, precision, runs * S);
  for (let i = 0; i < S && runs > 1; i++) {
    w0[P + i] = 3 * w0[i] * (1 + 1e-4 * rng.uniform(-1, 1));
    w0[2 * P + i] = 4 * w0[i];
    prev0[S + i] = w0[P + i] * (1 + 1e-5 * rng.uniform(-1, 1));
  }
  const w = held(precision, w0), prev = held(precision, prev0);
  const W = uploadReals(gpu, precision, w), G = uploadReals(gpu, precision, g);
  const PREV = uploadReals(gpu, precision, prev);
  const M = 8 + 2 * L; // per-run record: 3 grad sums, 2 weight sums, 2 distances, pad, layers
  const metrics = realBuffer(gpu, precision, runs * M + 3);
  poison(gpu, metrics);
  const m = (word: number) => view(metrics, M, word);
  const wView = view(W, P), wA = view(W, 0), gView = view(G, P), prevView = view(PREV, S);
  const common = { precision, runs, segments };
  runDispatches(gpu, [
    ...fusedSums(gpu, {
      ...common,
      // The weights before the update (the trainer copies them to `prev`).
      vectors: { w: prevView, g: gView },
      terms: [
        { kind: "dot", a: "w", b: "w" },
        { kind: "dot", a: "g", b: "w" },
        { kind: "dot", a: "g", b: "g" },
      ],
      out: m(0),
      layers: m(8),
    }),
    ...fusedSums(gpu, {
      ...common,
      vectors: { w: wView, wA },
      terms: [{ kind: "dot", a: "w", b: "w" }, { kind: "dot", a: "w", b: "wA" }],
      out: m(3),
    }),
    ...fusedSums(gpu, {
      ...common,
      vectors: { w: wView, wA, prev: prevView },
      norms: { w: m(3), wA: view(metrics, 0, 3), prev: m(0) },
      terms: [
        { kind: "distance", a: "w", b: "wA", aNorm2: "w", bNorm2: "wA" },
        { kind: "distance", a: "w", b: "prev", aNorm2: "w", bNorm2: "prev" },
      ],
      out: m(5),
    }),
  ]);
  const got = await readReals(gpu, precision, metrics);
  const tol = TOLERANCE[precision];
  const worst = { sum: 0, distance: 0 };
  for (let r = 0; r < runs; r++) {
    const wr = w.subarray(r * P, r * P + S), gr = g.subarray(r * P, r * P + S);
    const wa = w.subarray(0, S), pr = prev.subarray(r * S, (r + 1) * S);
    const abs = (v: Float64Array) => v.map(Math.abs);
    const what = (s: string) => `${precision} ${s}, run ${r}, R=${runs}, segments ${segments}`;
    const at = (k: number) => [got[r * M + k]];
    const norm = (k: number, ref: number, s: string) => {
      worst.sum = Math.max(worst.sum, Math.abs(got[r * M + k] / ref - 1));
      assertClose(at(k), [ref], tol.sum, 0, what(s));
    };
    const inner = (k: number, a: Float64Array, b: Float64Array, s: string) => {
      const scale = dot(abs(a), abs(b));
      worst.sum = Math.max(worst.sum, Math.abs(got[r * M + k] - dot(a, b)) / scale);
      assertClose(at(k), [dot(a, b)], 0, tol.sum * scale, what(s));
    };
    const distance = (k: number, ref: number, s: string) => {
      const [rtol, atol] = tol.distance(ref);
      if (ref > 0) worst.distance = Math.max(worst.distance, Math.abs(got[r * M + k] / ref - 1));
      assertClose(at(k), [ref], rtol, atol, what(s));
    };
    norm(0, dot(pr, pr), "|w_prev|²");
    inner(1, gr, pr, "<g, w_prev>");
    norm(2, dot(gr, gr), "|g|²");
    norm(3, dot(wr, wr), "|w|² after");
    inner(4, wr, wa, "<w, w_A>");
    distance(5, normalizedDistance(wr, wa), "|ŵ - ŵ_A|²");
    distance(6, normalizedDistance(wr, pr), "|ŵ - ŵ_prev|²");
    let start = 0;
    segments.forEach((len, l) => {
      const before = pr.subarray(start, start + len);
      norm(8 + l, dot(before, before), `layer ${l}`);
      start += len;
    });
    if (!Number.isNaN(got[r * M + 7])) throw new Error(what("wrote the pad word"));
  }
  for (let i = runs * M; i < got.length; i++) {
    if (!Number.isNaN(got[i])) throw new Error(`wrote past the runs' records at ${i}`);
  }
  console.error(
    `  ${precision} R=${runs} segments ${segments}: worst sum error ${worst.sum.toExponential(1)}` +
      ` (relative, or of Σ|a·b|), nonzero distances ${worst.distance.toExponential(1)} relative`,
  );
}

gpuTest(
  "fusedSums: the trainer's gradient and weight metrics (3 sums + layer norms, then 2 distances), R=1 and R=3",
  async (gpu) => {
    const rng = freshRng("fusedSums");
    // Tensors off the chunk and workgroup sizes; one larger than several chunks.
    const cases: [number, number[]][] = [[1, [7]], [3, [5000, 37, 3 * CHUNK + 11]], [3, [266240]]];
    for (const [runs, segments] of cases) await check(gpu, rng, "f32", runs, segments);
  },
);

gpuTest(
  "fusedSums in df64: sums to 1e-12 relative, distances near 0 to their own size",
  async (gpu) => {
    const rng = freshRng("fusedSums df64");
    // Every variant (dot and distance chunks, totals with and without layers) on one tiny
    // tensor, and on a tensor of two chunks beside two of one partial chunk each.
    const cases: [number, number[]][] = [[1, [7]], [3, [5000, 37, CHUNK + 11]]];
    for (const [runs, segments] of cases) await check(gpu, rng, "df64", runs, segments);
  },
);
