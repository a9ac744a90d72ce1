import {
  type Gpu,
  poison,
  readFloats,
  readReals,
  realBuffer,
  runDispatches,
  storageBuffer,
  uploadBuffer,
  uploadReals,
} from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";
import { randomReals } from "./precision.ts";
import { reluBackward, reluForward } from "../reference/ops.ts";
import type { Rng } from "../core/prng.ts";
import { assertClose, freshRng, randomFloats } from "../core/test_util.ts";
import { reluBackwardKernel, reluForwardKernel } from "./relu.ts";

/** Random values with about one in eight exactly zero (the y > 0 boundary). */
function withZeros(rng: Rng, n: number): Float32Array<ArrayBuffer> {
  return Float32Array.from(randomFloats(rng, n), (v) => (rng.next() < 0.125 ? 0 : v));
}

/** Checks that every element outside [off + r*stride, +count) for r < runs is still NaN. */
function assertUntouched(
  data: Float32Array,
  runs: number,
  off: number,
  stride: number,
  count: number,
) {
  for (let i = 0; i < data.length; i++) {
    const k = i - off, r = Math.floor(k / stride);
    const inside = k >= 0 && r < runs && k - r * stride < count;
    if (!inside && !Number.isNaN(data[i])) throw new Error(`element ${i} written (${data[i]})`);
  }
}

/**
 * Forward and backward on R runs of `count` elements. Inputs live at an offset with padded run
 * strides; outputs in poisoned buffers at another offset/stride. ReLU is exact: rtol 0.
 */
async function check(gpu: Gpu, rng: Rng, runs: number, count: number): Promise<void> {
  const tag = `relu R${runs} count ${count}`;
  const inOff = 5, inStride = count + 7, outOff = 2, outStride = count + 3;
  const size = (off: number, stride: number) => off + runs * stride;
  const x = new Float32Array(size(inOff, inStride)).fill(NaN);
  const dy = new Float32Array(size(inOff, inStride)).fill(NaN);
  for (let r = 0; r < runs; r++) {
    x.set(withZeros(rng, count), inOff + r * inStride);
    dy.set(randomFloats(rng, count), inOff + r * inStride);
  }
  const xBuf = uploadBuffer(gpu, x), dyBuf = uploadBuffer(gpu, dy);
  const yBuf = storageBuffer(gpu, size(outOff, outStride));
  const dxBuf = storageBuffer(gpu, size(outOff, outStride));
  poison(gpu, yBuf);
  poison(gpu, dxBuf);
  const inView = (buffer: GPUBuffer) => ({ buffer, offset: inOff, runStride: inStride });
  const outView = (buffer: GPUBuffer) => ({ buffer, offset: outOff, runStride: outStride });
  runDispatches(gpu, [
    reluForwardKernel(gpu, { runs, count, x: inView(xBuf), y: outView(yBuf) }),
    reluBackwardKernel(gpu, {
      runs,
      count,
      dy: inView(dyBuf),
      y: outView(yBuf),
      dx: outView(dxBuf),
    }),
  ]);
  const y = await readFloats(gpu, yBuf), dx = await readFloats(gpu, dxBuf);
  for (let r = 0; r < runs; r++) {
    const xr = x.subarray(inOff + r * inStride, inOff + r * inStride + count);
    const dyr = dy.subarray(inOff + r * inStride, inOff + r * inStride + count);
    const yr = y.subarray(outOff + r * outStride, outOff + r * outStride + count);
    const dxr = dx.subarray(outOff + r * outStride, outOff + r * outStride + count);
    const yRef = reluForward(xr);
    assertClose(yr, yRef, 0, 0, `${tag} run ${r} y`);
    assertClose(dxr, reluBackward(dyr, yRef), 0, 0, `${tag} run ${r} dx`);
  }
  assertUntouched(y, runs, outOff, outStride, count);
  assertUntouched(dx, runs, outOff, outStride, count);
}

for (const runs of [1, 3]) {
  gpuTest(`relu forward/backward, R=${runs}`, async (gpu) => {
    const rng = freshRng(`relu R=${runs}`);
    for (const count of [1, 255, 37 * 13, 300 * 256]) await check(gpu, rng, runs, count);
  });
}

gpuTest("relu: more than 65535 workgroups folds into workgroup_id.y", async (gpu) => {
  const rng = freshRng("relu large");
  // 65535 * 256 + 300 elements need a second row of workgroups. Plain loops, not the
  // helpers: at 16.8M elements the generic checks take seconds of CPU time.
  const count = 65535 * 256 + 300;
  const x = new Float32Array(count), dy = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const u = rng.nextU32();
    x[i] = (u & 7) === 0 ? 0 : (u / 2147483648) - 1;
    dy[i] = i + 1;
  }
  const xBuf = uploadBuffer(gpu, x), dyBuf = uploadBuffer(gpu, dy);
  const yBuf = storageBuffer(gpu, count), dxBuf = storageBuffer(gpu, count);
  poison(gpu, yBuf);
  poison(gpu, dxBuf);
  const v = (buffer: GPUBuffer) => ({ buffer, offset: 0, runStride: count });
  runDispatches(gpu, [
    reluForwardKernel(gpu, { runs: 1, count, x: v(xBuf), y: v(yBuf) }),
    reluBackwardKernel(gpu, { runs: 1, count, dy: v(dyBuf), y: v(yBuf), dx: v(dxBuf) }),
  ]);
  const y = await readFloats(gpu, yBuf, count), dx = await readFloats(gpu, dxBuf, count);
  for (let i = 0; i < count; i++) {
    const yi = x[i] > 0 ? x[i] : 0, dxi = x[i] > 0 ? dy[i] : 0;
    if (y[i] !== yi || dx[i] !== dxi) {
      throw new Error(`element ${i}: y ${y[i]} dx ${dx[i]}, expected ${yi} ${dxi}`);
    }
  }
});

gpuTest("relu in place and with a shared input (runStride 0), R=3", async (gpu) => {
  const rng = freshRng("relu in place");
  const runs = 3, count = 1000;
  // Forward from one shared x into a run-stacked y, then backward in place over dy.
  const x = withZeros(rng, count);
  const dy = Float32Array.from(randomFloats(rng, runs * count));
  const xBuf = uploadBuffer(gpu, x), dyBuf = uploadBuffer(gpu, dy);
  const yBuf = storageBuffer(gpu, runs * count);
  poison(gpu, yBuf);
  const stacked = (buffer: GPUBuffer) => ({ buffer, offset: 0, runStride: count });
  runDispatches(gpu, [
    reluForwardKernel(gpu, {
      runs,
      count,
      x: { buffer: xBuf, offset: 0, runStride: 0 },
      y: stacked(yBuf),
    }),
    reluBackwardKernel(gpu, {
      runs,
      count,
      dy: stacked(dyBuf),
      y: stacked(yBuf),
      dx: stacked(dyBuf),
    }),
  ]);
  const y = await readFloats(gpu, yBuf, runs * count),
    dx = await readFloats(gpu, dyBuf, runs * count);
  const yRef = reluForward(x);
  for (let r = 0; r < runs; r++) {
    assertClose(y.subarray(r * count, (r + 1) * count), yRef, 0, 0, `run ${r} y`);
    const dyr = dy.subarray(r * count, (r + 1) * count);
    assertClose(
      dx.subarray(r * count, (r + 1) * count),
      reluBackward(dyr, yRef),
      0,
      0,
      `run ${r} dx`,
    );
  }
  // In place again: y = relu(y) leaves y unchanged.
  runDispatches(gpu, [
    reluForwardKernel(gpu, { runs, count, x: stacked(yBuf), y: stacked(yBuf) }),
  ]);
  const y2 = await readFloats(gpu, yBuf, runs * count);
  for (let r = 0; r < runs; r++) {
    assertClose(y2.subarray(r * count, (r + 1) * count), yRef, 0, 0, `run ${r} y in place`);
  }
});

gpuTest("relu forward/backward in df64: exact on (hi, lo) pairs, R=3", async (gpu) => {
  const rng = freshRng("relu df64");
  const runs = 3, count = 1000, precision = "df64";
  const x = randomReals(rng, precision, runs * count).map((v, i) => (i % 8 ? v : 0));
  const dy = randomReals(rng, precision, runs * count);
  const xBuf = uploadReals(gpu, precision, x), dyBuf = uploadReals(gpu, precision, dy);
  const yBuf = realBuffer(gpu, precision, runs * count);
  const dxBuf = realBuffer(gpu, precision, runs * count);
  poison(gpu, yBuf);
  poison(gpu, dxBuf);
  const v = (buffer: GPUBuffer) => ({ buffer, offset: 0, runStride: count });
  runDispatches(gpu, [
    reluForwardKernel(gpu, { precision, runs, count, x: v(xBuf), y: v(yBuf) }),
    reluBackwardKernel(gpu, { precision, runs, count, dy: v(dyBuf), y: v(yBuf), dx: v(dxBuf) }),
  ]);
  const yRef = reluForward(x);
  assertClose(await readReals(gpu, precision, yBuf, runs * count), yRef, 0, 0, "df64 y");
  assertClose(
    await readReals(gpu, precision, dxBuf, runs * count),
    reluBackward(dy, yRef),
    0,
    0,
    "df64 dx",
  );
});
