import { poison, readFloats, runDispatches, storageBuffer, uploadBuffer, view } from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";
import { columnSum, dot, normalizedDistance } from "../reference/ops.ts";
import { assertClose, freshRng, randomFloats, runSlice } from "../core/test_util.ts";
import { columnSumKernel, dotKernel, normalizedDistanceKernel } from "./reduce.ts";

gpuTest("dotKernel: squared norm, per-run b and shared b, R=1 and R=3", async (gpu) => {
  const rng = freshRng("dot");
  // 300001: the size of a model's flat vector, where the f32 tree must stay ~1e-7 accurate.
  for (const [runs, length] of [[1, 1], [3, 1000], [1, 4097], [3, 300001]]) {
    const stride = length + 5; // runs not packed, offsets not aligned
    const a = randomFloats(rng, 3 + runs * stride), b = randomFloats(rng, 7 + runs * stride);
    const bufA = uploadBuffer(gpu, a), bufB = uploadBuffer(gpu, b);
    const out = storageBuffer(gpu, 2 + 3 * runs * 2);
    poison(gpu, out);
    const A = view(bufA, stride, 3);
    const cases = [
      { b: A, offset: 2 }, // squared norm: the same view bound twice
      { b: view(bufB, stride, 7), offset: 2 + runs * 2 },
      { b: view(bufB, 0, 7), offset: 2 + runs * 4 }, // every run against run 0
    ];
    runDispatches(
      gpu,
      cases.map((c) => dotKernel(gpu, { runs, length, a: A, b: c.b, out: view(out, 2, c.offset) })),
    );
    const got = await readFloats(gpu, out);
    for (const [k, c] of cases.entries()) {
      for (let r = 0; r < runs; r++) {
        const ar = a.subarray(3 + r * stride, 3 + r * stride + length);
        const bs = c.b.buffer === bufA ? a : b;
        const bo = c.b.offset + r * c.b.runStride;
        const br = bs.subarray(bo, bo + length);
        const mag = dot(ar.map(Math.abs), br.map(Math.abs));
        // relative to sum |a_i b_i|: a signed sum may cancel far below its terms
        assertClose(
          [got[c.offset + 2 * r]],
          [dot(ar, br)],
          0,
          5e-7 * mag + 1e-30,
          `dot case ${k} run ${r} (R=${runs}, n=${length})`,
        );
        if (k === 0) assertClose([got[c.offset + 2 * r]], [mag], 5e-7, 0, "squared norm");
      }
    }
    for (let i = 0; i < got.length; i++) {
      const used = cases.some((c) => i >= c.offset && i < c.offset + 2 * runs && i % 2 === 0);
      if (!used && !Number.isNaN(got[i])) throw new Error(`dot wrote outside out at ${i}`);
    }
  }
});

gpuTest(
  "normalizedDistanceKernel: chained after dotKernel, random, near-parallel, exact scale",
  async (gpu) => {
    const rng = freshRng("normalizedDistance");
    for (const [runs, length] of [[1, 3], [3, 1031], [3, 200003]]) {
      // run 0: unrelated b; run 1: b ≈ 3a with 1e-4 relative noise; run 2: b = 4a exactly.
      const a = randomFloats(rng, runs * length);
      const b = randomFloats(rng, runs * length);
      for (let i = 0; i < length && runs > 1; i++) {
        b[length + i] = 3 * a[length + i] * (1 + 1e-4 * rng.uniform(-1, 1));
        b[2 * length + i] = 4 * a[2 * length + i];
      }
      const bufA = uploadBuffer(gpu, a), bufB = uploadBuffer(gpu, b);
      // one metrics buffer holds both norms and the distance of each run, as in the trainer
      const stats = storageBuffer(gpu, 3 * runs);
      poison(gpu, stats);
      const A = view(bufA, length), B = view(bufB, length);
      runDispatches(gpu, [
        dotKernel(gpu, { runs, length, a: A, b: A, out: view(stats, 3, 0) }),
        dotKernel(gpu, { runs, length, a: B, b: B, out: view(stats, 3, 1) }),
        normalizedDistanceKernel(gpu, {
          runs,
          length,
          a: A,
          b: B,
          aNorm2: view(stats, 3, 0),
          bNorm2: view(stats, 3, 1),
          out: view(stats, 3, 2),
        }),
      ]);
      const all = await readFloats(gpu, stats, 3 * runs);
      const got = all.filter((_, k) => k % 3 === 2);
      if (all.some((v) => Number.isNaN(v))) throw new Error("a norm or distance is unwritten");
      for (let r = 0; r < runs; r++) {
        const want = normalizedDistance(
          runSlice(a, r, length, length),
          runSlice(b, r, length, length),
        );
        // Checked as the angle it encodes: rounding a_i/|a| in f32 moves |â - b̂|^2 by
        // ~2 eps |â - b̂| / sqrt(n), i.e. the angle by ~eps / sqrt(n), plus the norms' ~1e-7;
        // acos of an f32 cosine could not resolve angles below ~3e-4.
        const angle = 2 * Math.asin(Math.sqrt(got[r]) / 2);
        const wantAngle = 2 * Math.asin(Math.sqrt(want) / 2);
        assertClose([angle], [wantAngle], 1e-5, 1e-7, `angle run ${r} (n=${length})`);
        console.error(
          `  n=${length} run ${r}: out ${got[r].toExponential(4)} want ${want.toExponential(4)} ` +
            `angle ${angle.toExponential(3)} (error ${
              Math.abs(angle - wantAngle).toExponential(1)
            })`,
        );
      }
    }
  },
);

gpuTest("columnSumKernel: bias gradient, R=1 and R=3, shapes off the 16x16 tile", async (gpu) => {
  const rng = freshRng("columnSum");
  for (const [runs, rows, cols] of [[1, 1, 1], [3, 37, 10], [3, 512, 33], [1, 128, 256]]) {
    const stride = rows * cols + 3;
    const a = randomFloats(rng, 1 + runs * stride);
    const bufA = uploadBuffer(gpu, a);
    const outStride = cols + 2;
    const out = storageBuffer(gpu, 1 + runs * outStride);
    poison(gpu, out);
    runDispatches(gpu, [
      columnSumKernel(gpu, {
        runs,
        rows,
        cols,
        a: view(bufA, stride, 1),
        out: view(out, outStride, 1),
      }),
    ]);
    const got = await readFloats(gpu, out);
    for (let r = 0; r < runs; r++) {
      const m = a.subarray(1 + r * stride, 1 + r * stride + rows * cols);
      const want = columnSum(m, rows, cols);
      const mag = columnSum(m.map(Math.abs), rows, cols);
      const g = got.subarray(1 + r * outStride, 1 + r * outStride + cols);
      for (let j = 0; j < cols; j++) {
        assertClose(
          [g[j]],
          [want[j]],
          0,
          3e-7 * mag[j],
          `colsum r${r} col ${j} (${rows}x${cols})`,
        );
      }
    }
    // the gaps (element 0 and the 2 elements after each run's cols) must stay poisoned
    const gaps = [0];
    for (let r = 0; r < runs; r++) gaps.push(1 + r * outStride + cols, 2 + r * outStride + cols);
    for (const k of gaps) {
      if (!Number.isNaN(got[k])) throw new Error(`columnSum wrote outside out at ${k}`);
    }
  }
});
