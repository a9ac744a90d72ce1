/**
 * Matmul benchmark: GFLOP/s of the kernel in `shaders/matmul.ts` at one shape, and the
 * adapter's measured ceiling. Run directly for a table on stderr:
 * `XDG_RUNTIME_DIR=/tmp deno run --allow-read --allow-env bench/matmul.ts`.
 *
 * @module
 */

import { acquireGpu, type Gpu, gpuName, storageBuffer, uploadBuffer } from "../shaders/gpu.ts";
import { matmulFlops, matmulKernel, type MatmulTiling } from "../shaders/matmul.ts";
import { createRng } from "../core/prng.ts";
import { timeDispatch } from "./timing.ts";

/** Options of {@link benchMatmul}; `tiling` overrides the kernel's default tiling. */
export interface BenchMatmulOptions {
  runs?: number;
  transA?: boolean;
  transB?: boolean;
  /** Timed repetitions (the median is returned); default 5. */
  reps?: number;
  tiling?: Partial<MatmulTiling>;
}

/** What one timed shape achieved (median over the reps). */
export interface BenchMatmulResult {
  gflops: number;
  msPerCall: number;
}

/**
 * Times C = op(A)·op(B) at m×n×k (R runs in one dispatch): buffers are built once, warm-up
 * reps size the dispatch count N so a rep takes ~250 ms, then each of `reps` reps
 * submits N dispatches in one command buffer and waits for the GPU. Returns the median rep.
 */
export async function benchMatmul(
  gpu: Gpu,
  m: number,
  n: number,
  k: number,
  opts: BenchMatmulOptions = {},
): Promise<BenchMatmulResult> {
  const runs = opts.runs ?? 1, reps = opts.reps ?? 5;
  const rng = createRng(m * 7919 + n * 104729 + k);
  const random = (len: number) => Float32Array.from({ length: len }, () => rng.uniform(-1, 1));
  const a = uploadBuffer(gpu, random(m * k * runs), "bench A");
  const b = uploadBuffer(gpu, random(k * n * runs), "bench B");
  const c = storageBuffer(gpu, m * n * runs, "bench C");
  try {
    const d = matmulKernel(gpu, {
      runs,
      m,
      n,
      k,
      transA: opts.transA,
      transB: opts.transB,
      a: { buffer: a, offset: 0, runStride: m * k },
      b: { buffer: b, offset: 0, runStride: k * n },
      c: { buffer: c, offset: 0, runStride: m * n },
    }, opts.tiling);
    const msPerCall = await timeDispatch(gpu, d, reps);
    return { gflops: matmulFlops(m, n, k, runs) / (msPerCall * 1e6), msPerCall };
  } finally {
    a.destroy();
    b.destroy();
    c.destroy();
  }
}

/** The adapter's measured matmul ceiling: best GFLOP/s over large square-ish NN shapes. */
export async function matmulCeiling(gpu: Gpu): Promise<{ gflops: number; shape: string }> {
  // The first second of GPU work in a process runs slow on lavapipe (threads and clocks ramp
  // up): an untimed product goes first.
  await benchMatmul(gpu, 512, 512, 512, { reps: 2 });
  let best = { gflops: 0, shape: "" };
  for (const [m, n, k] of [[512, 512, 512], [1024, 1024, 512]]) {
    const { gflops } = await benchMatmul(gpu, m, n, k, { reps: 3 });
    if (gflops > best.gflops) best = { gflops, shape: `${m}x${n}x${k}` };
  }
  return best;
}

if (import.meta.main) {
  const gpu = await acquireGpu();
  console.error(`adapter: ${gpuName(gpu)}`);
  // The first second of GPU work in a process runs slow on lavapipe: an untimed shape first.
  await benchMatmul(gpu, 512, 512, 512, { reps: 2 });
  const cases: [string, number, number, number, BenchMatmulOptions][] = [
    ["NN", 128, 784, 256, {}],
    ["NN", 128, 256, 256, {}],
    ["NN", 512, 512, 512, {}],
    ["NN fwd X·W", 128, 256, 784, {}],
    ["NT dX = dZ·Wᵀ", 128, 784, 256, { transB: true }],
    ["TN dW = Xᵀ·dZ", 784, 256, 128, { transA: true }],
    ["NN R=3", 128, 256, 256, { runs: 3 }],
    ["NN head", 128, 10, 256, {}],
    ["NN scalar fallback", 128, 784, 256, {
      tiling: { vecA: false, vecB: false, vecC: false },
    }],
  ];
  for (const [name, m, n, k, opts] of cases) {
    const r = await benchMatmul(gpu, m, n, k, opts);
    console.error(
      `${name.padEnd(20)} ${`${m}x${n}x${k}`.padEnd(14)} ${r.gflops.toFixed(2).padStart(7)} ` +
        `GFLOP/s  ${r.msPerCall.toFixed(3)} ms/call`,
    );
  }
  const ceiling = await matmulCeiling(gpu);
  console.error(`ceiling: ${ceiling.gflops.toFixed(2)} GFLOP/s at ${ceiling.shape}`);
}
