import {
  type Gpu,
  poison,
  readReals,
  realBuffer,
  runDispatches,
  uploadReals,
  view,
} from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";
import { randomReals } from "./precision.ts";
import { dot } from "../reference/ops.ts";
import type { Rng } from "../core/prng.ts";
import { assertClose, freshRng } from "../core/test_util.ts";
import { CHUNK, chunkTable, fusedSums } from "./sums.ts";

Deno.test("chunkTable: chunks of at most CHUNK, never across a tensor; each tensor's first chunk", () => {
  const t = chunkTable([CHUNK + 1, 3, 2 * CHUNK]);
  const starts = [0, CHUNK, CHUNK + 1, CHUNK + 4, 2 * CHUNK + 4, 3 * CHUNK + 4];
  const firsts = [0, 2, 3, 5];
  if (t.join() !== [...starts, ...firsts].join()) throw new Error(`table ${t}`);
});

/**
 * Tolerances of each precision against the float64 reference, relative, for sums of squares (no
 * cancellation) and, times Σ|a·b|, for dot products: each sum is ~40 additions deep, of 2^-24
 * each in f32 and ~2^-47 in df64, with room in df64 for the reference's own naive float64 sum
 * (~sqrt(n)·2^-53).
 */
const TOLERANCE = { f32: 5e-7, df64: 1e-12 } as const;

/**
 * On `runs` runs of S = `segments`: three sums (|w|², <g, w>, |g|²) with term 0's per-tensor
 * sums into one poisoned record, and the per-tensor sums alone (no totals) into another.
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
  const w = randomReals(rng, precision, runs * P), g = randomReals(rng, precision, runs * P);
  const W = uploadReals(gpu, precision, w), G = uploadReals(gpu, precision, g);
  const M = 4 + L; // per-run record: 3 sums, a pad, the layers
  const metrics = realBuffer(gpu, precision, runs * M + 3);
  const layersOnly = realBuffer(gpu, precision, runs * L + 1);
  for (const b of [metrics, layersOnly]) poison(gpu, b);
  const common = { precision, runs, segments, vectors: { w: view(W, P), g: view(G, P) } };
  runDispatches(gpu, [
    ...fusedSums(gpu, {
      ...common,
      terms: [{ a: "w", b: "w" }, { a: "g", b: "w" }, { a: "g", b: "g" }],
      out: view(metrics, M),
      layers: view(metrics, M, 4),
    }),
    ...fusedSums(gpu, { ...common, terms: [{ a: "w", b: "w" }], layers: view(layersOnly, L) }),
  ]);
  const got = await readReals(gpu, precision, metrics);
  const alone = await readReals(gpu, precision, layersOnly);
  const tol = TOLERANCE[precision];
  let worst = 0;
  for (let r = 0; r < runs; r++) {
    const wr = w.subarray(r * P, r * P + S), gr = g.subarray(r * P, r * P + S);
    const abs = (v: Float64Array) => v.map(Math.abs);
    const what = (s: string) => `${precision} ${s}, run ${r}, R=${runs}, segments ${segments}`;
    const close = (x: number, a: Float64Array, b: Float64Array, s: string) => {
      const scale = dot(abs(a), abs(b));
      worst = Math.max(worst, Math.abs(x - dot(a, b)) / scale);
      assertClose([x], [dot(a, b)], 0, tol * scale, what(s));
    };
    close(got[r * M], wr, wr, "|w|²");
    close(got[r * M + 1], gr, wr, "<g, w>");
    close(got[r * M + 2], gr, gr, "|g|²");
    let start = 0;
    segments.forEach((len, l) => {
      const t = wr.subarray(start, start + len);
      close(got[r * M + 4 + l], t, t, `layer ${l}`);
      if (!Object.is(alone[r * L + l], got[r * M + 4 + l])) {
        throw new Error(
          what(`layer ${l}: the per-tensor sums alone differ from those with totals`),
        );
      }
      start += len;
    });
    if (!Number.isNaN(got[r * M + 3])) throw new Error(what("wrote the pad word"));
  }
  for (let i = runs * M; i < got.length; i++) {
    if (!Number.isNaN(got[i])) throw new Error(`wrote past the runs' records at ${i}`);
  }
  if (!Number.isNaN(alone[runs * L])) throw new Error("wrote past the runs' layer sums");
  console.error(
    `  ${precision} R=${runs} segments ${segments}: worst error ${
      worst.toExponential(1)
    } of Σ|a·b|`,
  );
}

gpuTest(
  "fusedSums: three sums with per-tensor norms, and per-tensor norms alone, R=1 and R=3",
  async (gpu) => {
    const rng = freshRng("fusedSums");
    // Tensors off the chunk and workgroup sizes; one larger than several chunks.
    const cases: [number, number[]][] = [[1, [7]], [3, [5000, 37, 3 * CHUNK + 11]], [3, [266240]]];
    for (const [runs, segments] of cases) await check(gpu, rng, "f32", runs, segments);
  },
);

gpuTest(
  "fusedSums in df64: sums to 1e-12 relative",
  async (gpu) => {
    const rng = freshRng("fusedSums df64");
    // Every variant (totals with and without layers) on one tiny tensor, and on a tensor of
    // two chunks beside two of one partial chunk each.
    const cases: [number, number[]][] = [[1, [7]], [3, [5000, 37, CHUNK + 11]]];
    for (const [runs, segments] of cases) await check(gpu, rng, "df64", runs, segments);
  },
);
