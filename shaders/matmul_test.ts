/**
 * Tests of the matmul kernel against the float64 reference `matmul`: every variant (NN,
 * NN+bias, NT, TN) at R = 1 and R = 3, on shapes that are not multiples of the block, with
 * aligned offsets (vec4 paths), odd offsets (scalar fallback) and a shared (runStride 0) A.
 *
 * @module
 */

import {
  type Gpu,
  poison,
  readFloats,
  runDispatches,
  storageBuffer,
  type TensorView,
} from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";
import { matmul } from "../reference/ops.ts";
import { chooseTiling, matmulKernel, type MatmulSpec } from "./matmul.ts";
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
