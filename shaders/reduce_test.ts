import { poison, readFloats, runDispatches, storageBuffer, uploadBuffer, view } from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";
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
