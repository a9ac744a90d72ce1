/**
 * Tests of the matmul kernel against the float64 reference `matmul`: in float32 every variant
 * (NN, NN+bias, NT, TN) at R = 1 and R = 3, on shapes that are not multiples of the block, with
 * aligned offsets (vec4 paths), odd offsets (scalar fallback) and a shared (runStride 0) A; in
 * df64 every product (NN, NT, TN, TT) with and without bias, R = 2, on small ragged shapes with
 * the shrunk block and the full 16×12 one.
 *
 * @module
 */

import {
  type Gpu,
  poison,
  readFloats,
  readReals,
  realBuffer,
  runDispatches,
  storageBuffer,
  type TensorView,
  uploadReals,
} from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";
import { randomReals } from "./precision.ts";
import { matmul } from "../reference/ops.ts";
import { chooseTiling, matmulKernel, type MatmulSpec, type MatmulTiling } from "./matmul.ts";
import { assertClose, freshRng, randomFloats, runSlice } from "../core/test_util.ts";
import type { Rng } from "../core/prng.ts";

type Shape = [m: number, n: number, k: number];
/** 1×1×1; odd sizes; k%4==0 with odd n; every dimension of the vec4 paths with ragged edges. */
const SHAPES: Shape[] = [[1, 1, 1], [37, 53, 29], [130, 70, 200], [132, 784, 12]];

/** Where the operands sit: aligned (vec4 allowed), odd (scalar fallback), shared A. */
type Layout = "aligned" | "odd" | "sharedA";

interface Operand {
  view: TensorView;
  /** The run-stacked contents as uploaded (NaN between runs). */
  host: Float32Array;
  size: number;
}

/** Uploads `runs` random slices of `size` at the layout's offset/stride, NaN in every gap. */
function operand(
  gpu: Gpu,
  rng: Rng,
  size: number,
  runs: number,
  offset: number,
  stride: number,
): Operand {
  const total = offset + (runs - 1) * stride + size;
  const host = new Float32Array(total + 5).fill(NaN);
  for (let r = 0; r < (stride === 0 ? 1 : runs); r++) {
    host.set(randomFloats(rng, size), offset + r * stride);
  }
  const buffer = storageBuffer(gpu, host.length);
  gpu.device.queue.writeBuffer(buffer, 0, host);
  return { view: { buffer, offset, runStride: stride }, host, size };
}

function placement(
  layout: Layout,
  which: number,
  size: number,
): { offset: number; stride: number } {
  if (layout === "odd") return { offset: 2 * which + 1, stride: size + 2 * which + 1 };
  const stride = Math.ceil(size / 4) * 4 + 4 * which;
  return { offset: 4 * which, stride: layout === "sharedA" && which === 0 ? 0 : stride };
}

async function check(
  gpu: Gpu,
  rng: Rng,
  [m, n, k]: Shape,
  runs: number,
  transA: boolean,
  transB: boolean,
  bias: boolean,
  layout: Layout,
): Promise<void> {
  const at = (which: number, size: number) => placement(layout, which, size);
  const pa = at(0, m * k), pb = at(1, k * n), pc = at(2, m * n), pz = at(3, n);
  const a = operand(gpu, rng, m * k, runs, pa.offset, pa.stride);
  const b = operand(gpu, rng, k * n, runs, pb.offset, pb.stride);
  const bi = bias ? operand(gpu, rng, n, runs, pz.offset, pz.stride) : undefined;
  const cLen = pc.offset + (runs - 1) * pc.stride + m * n + 3;
  const c = storageBuffer(gpu, cLen);
  poison(gpu, c);
  const spec: MatmulSpec = {
    runs,
    m,
    n,
    k,
    transA,
    transB,
    a: a.view,
    b: b.view,
    c: { buffer: c, offset: pc.offset, runStride: pc.stride },
    bias: bi?.view,
  };
  const t = chooseTiling(spec);
  const what = `${transA ? "T" : "N"}${transB ? "T" : "N"}${bias ? "+bias" : ""} ` +
    `${m}x${n}x${k} R=${runs} ${layout} (vec4 A=${t.vecA} B=${t.vecB} C=${t.vecC})`;
  runDispatches(gpu, [matmulKernel(gpu, spec)]);
  const got = await readFloats(gpu, c, cLen);
  const written = new Uint8Array(cLen);
  for (let r = 0; r < runs; r++) {
    const slice = (o: Operand) =>
      runSlice(o.host.subarray(o.view.offset), r, o.view.runStride, o.size);
    const want = matmul(slice(a), slice(b), m, n, k, transA, transB, bi && slice(bi));
    const start = pc.offset + r * pc.stride;
    assertClose(
      got.subarray(start, start + m * n),
      want,
      1e-4,
      1e-5 * Math.sqrt(k),
      `${what} run ${r}`,
    );
    written.fill(1, start, start + m * n);
  }
  // Nothing outside C's slices may be written.
  for (let i = 0; i < cLen; i++) {
    if (!written[i] && !Number.isNaN(got[i])) throw new Error(`${what}: wrote outside C at ${i}`);
  }
  for (const buf of [a.view.buffer, b.view.buffer, bi?.view.buffer, c]) buf?.destroy();
}

const VARIANTS: [name: string, transA: boolean, transB: boolean, bias: boolean][] = [
  ["NN", false, false, false],
  ["NN+bias", false, false, true],
  ["NT", false, true, false],
  ["TN", true, false, false],
];

for (const [name, transA, transB, bias] of VARIANTS) {
  for (const runs of [1, 3]) {
    gpuTest(
      `matmul ${name} R=${runs} matches the reference on ragged shapes and layouts`,
      async (gpu) => {
        const rng = freshRng(`matmul ${name} R=${runs}`);
        const layouts: Layout[] = runs === 1 ? ["aligned", "odd"] : ["sharedA", "odd"];
        for (const shape of SHAPES) {
          for (const layout of layouts) {
            await check(gpu, rng, shape, runs, transA, transB, bias, layout);
          }
        }
      },
    );
  }
}

/**
 * One df64 product per run at odd offsets and padded run strides, C poisoned. Tolerance: each
 * element is a sum of k products (+ bias) of values in [-1, 1). A df64 product is within
 * 1.3e-14 of |a·b| and each add within ~7e-15 of the partial sum (df64.ts), so the error is at
 * most ~k·2e-14 · (Σ|a·b| + |bias|), 7e-13 for k = 33, typically √k·1e-15 (measured: 8.5e-15).
 * It scales with that magnitude, not with the result, which cancellation can make arbitrarily
 * small. Hence |got - want| <= 1e-12 · (Σ|a·b| + |bias|); the float64 reference's own error
 * (~k·1e-16) is far below, and a float32 step anywhere (~1e-7) fails.
 */
async function checkDf64(
  gpu: Gpu,
  rng: Rng,
  [m, n, k]: Shape,
  transA: boolean,
  transB: boolean,
  bias: boolean,
  tiling: Partial<MatmulTiling>,
): Promise<void> {
  const precision = "df64", runs = 2;
  const stacked = (size: number, offset: number) => {
    const stride = size + 3;
    const host = randomReals(rng, precision, offset + runs * stride);
    const slices = Array.from(
      { length: runs },
      (_, r) => host.subarray(offset + r * stride, offset + r * stride + size),
    );
    const view = { buffer: uploadReals(gpu, precision, host), offset, runStride: stride };
    return { view, slices };
  };
  const a = stacked(m * k, 1), b = stacked(k * n, 2), bi = bias ? stacked(n, 3) : undefined;
  const cOff = 2, cStride = m * n + 1;
  const c = realBuffer(gpu, precision, cOff + runs * cStride);
  poison(gpu, c);
  const spec: MatmulSpec = {
    precision,
    runs,
    m,
    n,
    k,
    transA,
    transB,
    a: a.view,
    b: b.view,
    c: { buffer: c, offset: cOff, runStride: cStride },
    bias: bi?.view,
  };
  const t = chooseTiling(spec, tiling);
  const what = `df64 ${transA ? "T" : "N"}${transB ? "T" : "N"}${bias ? "+bias" : ""} ` +
    `${m}x${n}x${k} block ${t.tm}x${t.tn}`;
  if (t.vecA || t.vecB || t.vecC) throw new Error(`${what}: df64 got a vec4 tiling`);
  runDispatches(gpu, [matmulKernel(gpu, spec, tiling)]);
  const got = await readReals(gpu, precision, c);
  const abs = (v: Float64Array) => v.map(Math.abs);
  for (let r = 0; r < runs; r++) {
    const z = bi?.slices[r];
    const want = matmul(a.slices[r], b.slices[r], m, n, k, transA, transB, z);
    const mag = matmul(abs(a.slices[r]), abs(b.slices[r]), m, n, k, transA, transB, z && abs(z));
    const start = cOff + r * cStride;
    for (let i = 0; i < m * n; i++) {
      assertClose([got[start + i]], [want[i]], 0, 1e-12 * mag[i], `${what} run ${r} [${i}]`);
    }
  }
  // The gaps before, between and after the runs' C must stay poisoned.
  for (const i of [0, 1, cOff + m * n, cOff + cStride + m * n]) {
    if (!Number.isNaN(got[i])) throw new Error(`${what}: wrote outside C at ${i}`);
  }
  for (const buf of [a.view.buffer, b.view.buffer, bi?.view.buffer, c]) buf?.destroy();
}

for (const transA of [false, true]) {
  for (const transB of [false, true]) {
    const name = `${transA ? "T" : "N"}${transB ? "T" : "N"}`;
    gpuTest(`matmul df64 ${name} ±bias R=2 matches the float64 reference to 1e-12`, async (gpu) => {
      const rng = freshRng(`matmul df64 ${name}`);
      for (const bias of [false, true]) {
        // The chooser's shrunk block (8×4) on 1×1×1 and a ragged shape, then the full 16×12
        // block with ragged edges on both dimensions.
        await checkDf64(gpu, rng, [1, 1, 1], transA, transB, bias, {});
        await checkDf64(gpu, rng, [11, 7, 13], transA, transB, bias, {});
        await checkDf64(gpu, rng, [19, 27, 33], transA, transB, bias, { tm: 16, tn: 12 });
      }
    });
  }
}
