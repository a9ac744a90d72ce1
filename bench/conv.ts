/**
 * Conv2d benchmark: GFLOP/s of the three convolution kernels (`shaders/conv2d_*.ts`: forward, dx, dW) at
 * given shapes. Run directly for PreResNet-20's conv shapes (CIFAR 32×32) and the CNN's first
 * layer (28×28) at batch 128: a table on stderr, JSON on stdout.
 * `XDG_RUNTIME_DIR=/tmp deno run --allow-read --allow-env bench/conv.ts [--batch N]
 * [--products forward,backwardInput,backwardWeight] [--tiling '{"forward":{"tm":8}}']`.
 *
 * GFLOP per product = 2*N*OH*OW*Cout*K*K*Cin (each of the three products does that many).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { timeDispatch } from "./timing.ts";
import {
  acquireGpu,
  type Dispatch,
  type Gpu,
  storageBuffer,
  type TensorView,
  uploadBuffer,
} from "../shaders/gpu.ts";
import { chooseConvTiling, type ConvProduct, type ConvTiling } from "../shaders/conv2d_tiling.ts";
import { conv2dForwardKernel } from "../shaders/conv2d_forward.ts";
import { conv2dBackwardInputKernel } from "../shaders/conv2d_backward_input.ts";
import { conv2dBackwardWeightKernel } from "../shaders/conv2d_backward_weight.ts";
import { conv2dFlops, type Conv2dShape, convOutputShape } from "../reference/conv.ts";
import { createRng } from "../core/prng.ts";

/** One benchmarked layer shape. */
export interface BenchConvShape {
  name: string;
  shape: Conv2dShape;
  /** Runs in one dispatch (default 1). */
  runs?: number;
}

/** Options of {@link benchConv}. */
export interface BenchConvOptions {
  /** Products to time (default all three). */
  products?: ConvProduct[];
  /** Tiling overrides per product (experiments). */
  tiling?: Partial<Record<ConvProduct, Partial<ConvTiling>>>;
  /** Timed repetitions (the median is returned); default 5. */
  reps?: number;
}

/** What one (shape, product) achieved: the median rep. */
export interface BenchConvResult {
  name: string;
  product: ConvProduct;
  gflops: number;
  msPerCall: number;
  /** The tiling used, e.g. "16x16 wg 64 vec4 A B C". */
  tiling: string;
}

export const PRODUCTS: ConvProduct[] = ["forward", "backwardInput", "backwardWeight"];

const describe = (t: ConvTiling, product: ConvProduct) =>
  `${t.tm}x${t.tn} wg ${t.wg}${product === "backwardWeight" ? ` tc ${t.tc}` : ""} vec4` +
  `${t.vecA ? " A" : ""}${t.vecB ? " B" : ""}${t.vecC ? " C" : ""}`;

/**
 * Times every product at every shape (buffers built once per shape, random inputs) and
 * returns GFLOP/s per (shape, product).
 */
export async function benchConv(
  gpu: Gpu,
  shapes: BenchConvShape[],
  opts: BenchConvOptions = {},
): Promise<BenchConvResult[]> {
  const results: BenchConvResult[] = [];
  for (const { name, shape, runs = 1 } of shapes) {
    const { oh, ow } = convOutputShape(shape);
    const rng = createRng(shape.n * 7919 + shape.h * 131 + shape.cin * 17 + shape.cout);
    const random = (len: number) => Float32Array.from({ length: len }, () => rng.uniform(-1, 1));
    const xLen = shape.n * shape.h * shape.w * shape.cin;
    const yLen = shape.n * oh * ow * shape.cout;
    const wLen = shape.k * shape.k * shape.cin * shape.cout;
    const buffers = {
      x: uploadBuffer(gpu, random(xLen * runs)),
      w: uploadBuffer(gpu, random(wLen * runs)),
      dy: uploadBuffer(gpu, random(yLen * runs)),
      y: storageBuffer(gpu, yLen * runs),
      dx: storageBuffer(gpu, xLen * runs),
      dw: storageBuffer(gpu, wLen * runs),
    };
    const v = (b: GPUBuffer, len: number): TensorView => ({ buffer: b, offset: 0, runStride: len });
    const x = v(buffers.x, xLen), w = v(buffers.w, wLen), dy = v(buffers.dy, yLen);
    const y = v(buffers.y, yLen), dx = v(buffers.dx, xLen), dw = v(buffers.dw, wLen);
    try {
      for (const product of opts.products ?? PRODUCTS) {
        const over = opts.tiling?.[product];
        const [d, views]: [Dispatch, [TensorView, TensorView, TensorView]] = product === "forward"
          ? [conv2dForwardKernel(gpu, { runs, shape, x, w, y }, over), [x, w, y]]
          : product === "backwardInput"
          ? [conv2dBackwardInputKernel(gpu, { runs, shape, dy, w, dx }, over), [dy, w, dx]]
          : [conv2dBackwardWeightKernel(gpu, { runs, shape, x, dy, dw }, over), [x, dy, dw]];
        const ms = await timeDispatch(gpu, d, opts.reps ?? 5);
        const t = chooseConvTiling(product, shape, runs, views, over);
        results.push({
          name,
          product,
          gflops: (conv2dFlops(shape) * runs) / (ms * 1e6),
          msPerCall: ms,
          tiling: describe(t, product),
        });
      }
    } finally {
      for (const b of Object.values(buffers)) b.destroy();
    }
  }
  return results;
}

/** PreResNet-20 (CIFAR 32×32) conv shapes and the CNN's first layer (28×28) at batch `n`. */
export function preResNetShapes(n: number): BenchConvShape[] {
  const s = (cin: number, cout: number, hw: number, k: number, stride: number) => ({
    name: `${cin}->${cout} ${hw}x${hw} k${k} s${stride}`,
    shape: { n, h: hw, w: hw, cin, cout, k, stride, pad: k === 3 ? 1 : 0 },
  });
  return [
    s(16, 16, 32, 3, 1),
    s(16, 32, 32, 3, 2),
    s(32, 32, 16, 3, 1),
    s(32, 64, 16, 3, 2),
    s(64, 64, 8, 3, 1),
    s(16, 32, 32, 1, 2),
    s(32, 64, 16, 1, 2),
    s(1, 32, 28, 3, 1),
  ];
}

if (import.meta.main) {
  const opt = { type: "string" } as const;
  const { values: args } = parseArgs({
    args: Deno.args,
    options: { batch: opt, products: opt, tiling: opt, reps: opt, shapes: opt },
    strict: true,
  });
  const batch = Number(args.batch ?? 128);
  const products = args.products ? (args.products.split(",") as ConvProduct[]) : PRODUCTS;
  const tiling = args.tiling ? JSON.parse(args.tiling) : undefined;
  const gpu = await acquireGpu();
  console.error(`adapter: ${gpu.adapterDescription}; batch ${batch}`);
  // The first second of GPU work in a process runs slow on lavapipe: an untimed shape first.
  await benchConv(gpu, preResNetShapes(batch).slice(0, 1), { products: ["forward"], reps: 2 });
  // --shapes 0,2: a subset of the list by index (experiments).
  const all = preResNetShapes(batch);
  const shapes = args.shapes ? args.shapes.split(",").map((i) => all[Number(i)]) : all;
  const results = await benchConv(gpu, shapes, {
    products,
    tiling,
    reps: Number(args.reps ?? 5),
  });
  for (const r of results) {
    console.error(
      `${r.name.padEnd(22)} ${r.product.padEnd(15)} ${r.gflops.toFixed(2).padStart(7)} GFLOP/s ` +
        `${r.msPerCall.toFixed(2).padStart(8)} ms/call  ${r.tiling}`,
    );
  }
  console.log(JSON.stringify({ adapter: gpu.adapterDescription, batch, results }, null, 2));
}
