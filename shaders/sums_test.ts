import { poison, readFloats, runDispatches, storageBuffer, uploadBuffer, view } from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";
import { dot, normalizedDistance } from "../reference/ops.ts";
import { assertClose, freshRng, randomFloats } from "../core/test_util.ts";
import { CHUNK, chunkTable, fusedSums } from "./sums.ts";

Deno.test("chunkTable: chunks of at most CHUNK, never across a tensor; each tensor's first chunk", () => {
  const t = chunkTable([CHUNK + 1, 3, 2 * CHUNK]);
  const starts = [0, CHUNK, CHUNK + 1, CHUNK + 4, 2 * CHUNK + 4, 3 * CHUNK + 4];
  const firsts = [0, 2, 3, 5];
  if (t.join() !== [...starts, ...firsts].join()) throw new Error(`table ${t}`);
});

gpuTest(
  "fusedSums: the trainer's gradient and weight metrics (3 sums + layer norms, then 2 distances), R=1 and R=3",
  async (gpu) => {
    const rng = freshRng("fusedSums");
    // Tensors off the chunk and workgroup sizes; one larger than several chunks.
    for (
      const [runs, segments] of [[1, [7]], [3, [5000, 37, 3 * CHUNK + 11]], [3, [266240]]] as const
    ) {
      const S = segments.reduce((a, b) => a + b, 0), L = segments.length;
      const P = S + 13; // S first, then other parameters, as in the trainer's layout
      const w = randomFloats(rng, runs * P), g = randomFloats(rng, runs * P);
      const prev = randomFloats(rng, runs * S);
      // run 1: near-parallel to run 0 (1e-4 noise); run 2: exactly 4 times run 0.
      for (let i = 0; i < S && runs > 1; i++) {
        w[P + i] = 3 * w[i] * (1 + 1e-4 * rng.uniform(-1, 1));
        w[2 * P + i] = 4 * w[i];
        prev[S + i] = w[P + i] * (1 + 1e-5 * rng.uniform(-1, 1));
      }
      const W = uploadBuffer(gpu, w), G = uploadBuffer(gpu, g), PREV = uploadBuffer(gpu, prev);
      const M = 8 + 2 * L; // per-run record: 3 grad sums, 2 weight sums, 2 distances, pad, layers
      const metrics = storageBuffer(gpu, runs * M + 3);
      poison(gpu, metrics);
      const m = (word: number) => view(metrics, M, word);
      const wView = view(W, P), wA = view(W, 0), gView = view(G, P), prevView = view(PREV, S);
      runDispatches(gpu, [
        ...fusedSums(gpu, {
          runs,
          segments: [...segments],
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
          runs,
          segments: [...segments],
          vectors: { w: wView, wA },
          terms: [{ kind: "dot", a: "w", b: "w" }, { kind: "dot", a: "w", b: "wA" }],
          out: m(3),
        }),
        ...fusedSums(gpu, {
          runs,
          segments: [...segments],
          vectors: { w: wView, wA, prev: prevView },
          norms: { w: m(3), wA: view(metrics, 0, 3), prev: m(0) },
          terms: [
            { kind: "distance", a: "w", b: "wA", aNorm2: "w", bNorm2: "wA" },
            { kind: "distance", a: "w", b: "prev", aNorm2: "w", bNorm2: "prev" },
          ],
          out: m(5),
        }),
      ]);
      const got = await readFloats(gpu, metrics);
      for (let r = 0; r < runs; r++) {
        const wr = w.subarray(r * P, r * P + S), gr = g.subarray(r * P, r * P + S);
        const w0 = w.subarray(0, S), pr = prev.subarray(r * S, (r + 1) * S);
        const abs = (v: Float32Array) => v.map(Math.abs);
        const what = (s: string) => `${s}, run ${r}, R=${runs}, segments ${segments}`;
        const at = (k: number) => [got[r * M + k]];
        assertClose(at(0), [dot(pr, pr)], 5e-7, 0, what("|w_prev|²"));
        assertClose(at(1), [dot(gr, pr)], 0, 5e-7 * dot(abs(gr), abs(pr)), what("<g, w_prev>"));
        assertClose(at(2), [dot(gr, gr)], 5e-7, 0, what("|g|²"));
        assertClose(at(3), [dot(wr, wr)], 5e-7, 0, what("|w|² after"));
        assertClose(at(4), [dot(wr, w0)], 0, 5e-7 * dot(abs(wr), abs(w0)), what("<w, w_A>"));
        // Distances near 0 are exact to their own size, not to |w|'s.
        const dA = normalizedDistance(wr, w0), dPrev = normalizedDistance(wr, pr);
        assertClose(at(5), [dA], 2e-3, 1e-13, what("|ŵ - ŵ_A|²"));
        assertClose(at(6), [dPrev], 2e-3, 1e-13, what("|ŵ - ŵ_prev|²"));
        let start = 0;
        segments.forEach((len, l) => {
          const before = pr.subarray(start, start + len);
          assertClose([got[r * M + 8 + l]], [dot(before, before)], 5e-7, 0, what(`layer ${l}`));
          start += len;
        });
        if (!Number.isNaN(got[r * M + 7])) throw new Error(what("wrote the pad word"));
      }
      for (let i = runs * M; i < got.length; i++) {
        if (!Number.isNaN(got[i])) throw new Error(`wrote past the runs' records at ${i}`);
      }
    }
  },
);
