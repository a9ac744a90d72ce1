import {
  poison,
  readFloats,
  readReals,
  realBuffer,
  runDispatches,
  storageBuffer,
  uploadBuffer,
  uploadReals,
  view,
} from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";
import { randomReals } from "./precision.ts";
import { columnSum } from "../reference/ops.ts";
import { assertClose, freshRng, randomFloats } from "../core/test_util.ts";
import { columnSumKernel } from "./reduce.ts";

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

/**
 * df64 column sums against float64 on fresh random pairs, at a padded offset and run stride,
 * out poisoned. Tolerance: a lane adds ceil(rows / 16) values, then a 4-level tree, and each
 * df64 add is within ~7e-15 of its result (df64.ts), whose magnitude is at most Σ|a|; so the
 * error is at most (rows / 16 + 4)·7e-15 · Σ|a| (5e-14 for 100 rows), scaling with Σ|a|, not
 * with the sum, which cancellation can make arbitrarily small. Hence 1e-12 · Σ|a| per column;
 * a float32 step anywhere (~1e-7) fails.
 */
gpuTest(
  "columnSumKernel in df64: R=2, rows below and above the 16 lanes, to 1e-12",
  async (gpu) => {
    const rng = freshRng("columnSum df64");
    const precision = "df64", runs = 2;
    for (const [rows, cols] of [[1, 1], [7, 20], [100, 33]]) {
      const stride = rows * cols + 3, outStride = cols + 2;
      const a = randomReals(rng, precision, 1 + runs * stride);
      const bufA = uploadReals(gpu, precision, a);
      const out = realBuffer(gpu, precision, 1 + runs * outStride);
      poison(gpu, out);
      runDispatches(gpu, [
        columnSumKernel(gpu, {
          precision,
          runs,
          rows,
          cols,
          a: view(bufA, stride, 1),
          out: view(out, outStride, 1),
        }),
      ]);
      const got = await readReals(gpu, precision, out);
      for (let r = 0; r < runs; r++) {
        const m = a.subarray(1 + r * stride, 1 + r * stride + rows * cols);
        const want = columnSum(m, rows, cols);
        const mag = columnSum(m.map(Math.abs), rows, cols);
        for (let j = 0; j < cols; j++) {
          const g = got[1 + r * outStride + j];
          assertClose(
            [g],
            [want[j]],
            0,
            1e-12 * mag[j],
            `df64 colsum r${r} col ${j} (${rows}x${cols})`,
          );
        }
      }
      for (const k of [0, 1 + cols, 1 + outStride + cols, 2 + outStride + cols]) {
        if (!Number.isNaN(got[k])) throw new Error(`df64 columnSum wrote outside out at ${k}`);
      }
      bufA.destroy();
      out.destroy();
    }
  },
);
