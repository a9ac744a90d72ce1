/**
 * Tests of the conv2d kernels against the float64 references of `reference/conv.ts`: all three
 * products at R = 1 and R = 3, K = 3 and K = 1 at stride 1 and 2, on shapes off every tile
 * size (odd H/W, channel counts 1, 3, 5, 17), with aligned views (vec4 paths), odd offsets and
 * strides (scalar fallback) and an input shared by all runs (runStride 0), outputs poisoned
 * with NaN and checked untouched outside their views.
 *
 * @module
 */

import { type Gpu, poison, readFloats, runDispatches, storageBuffer } from "./gpu.ts";
import {
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dForward,
  type Conv2dShape,
  convOutputShape,
} from "../reference/conv.ts";
import {
  chooseConvTiling,
  conv2dBackwardInputKernel,
  conv2dBackwardWeightKernel,
  conv2dForwardKernel,
  type ConvProduct,
  type ConvTiling,
} from "./conv2d.ts";
import { assertClose, freshRng, randomFloats, runSlice } from "../core/test_util.ts";
import type { Rng } from "../core/prng.ts";
import type { TensorView } from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";

const SHAPES: [string, Conv2dShape][] = [
  ["K=3 s1 3->5", { n: 2, h: 5, w: 7, cin: 3, cout: 5, k: 3, stride: 1, pad: 1 }],
  ["K=3 s1 8->12", { n: 2, h: 7, w: 5, cin: 8, cout: 12, k: 3, stride: 1, pad: 1 }],
  ["K=3 s1 1->8", { n: 2, h: 9, w: 7, cin: 1, cout: 8, k: 3, stride: 1, pad: 1 }],
  ["K=3 s2 17->4", { n: 3, h: 9, w: 6, cin: 17, cout: 4, k: 3, stride: 2, pad: 1 }],
  ["K=3 s2 4->8", { n: 2, h: 7, w: 9, cin: 4, cout: 8, k: 3, stride: 2, pad: 1 }],
  ["K=1 s1 5->3", { n: 2, h: 5, w: 3, cin: 5, cout: 3, k: 1, stride: 1, pad: 0 }],
  ["K=1 s2 12->16", { n: 3, h: 7, w: 5, cin: 12, cout: 16, k: 1, stride: 2, pad: 0 }],
  ["K=1 s2 16->20", { n: 2, h: 6, w: 6, cin: 16, cout: 20, k: 1, stride: 2, pad: 0 }],
];

/** aligned: vec4 allowed; odd: odd offsets and strides (scalar); shared: A input runStride 0. */
type Layout = "aligned" | "odd" | "shared";

interface Operand {
  view: TensorView;
  /** The buffer's contents as uploaded (NaN outside the runs' slices). */
  host: Float32Array;
  size: number;
}

function place(layout: Layout, which: number, size: number): [offset: number, stride: number] {
  if (layout === "odd") return [2 * which + 1, size + 2 * which + 1];
  const stride = Math.ceil(size / 4) * 4 + 4 * which;
  return [4 * which, layout === "shared" && which === 0 ? 0 : stride];
}

function operand(gpu: Gpu, rng: Rng, layout: Layout, which: number, size: number, runs: number) {
  const [offset, stride] = place(layout, which, size);
  const host = new Float32Array(offset + (runs - 1) * stride + size + 5).fill(NaN);
  for (let r = 0; r < (stride === 0 ? 1 : runs); r++) {
    host.set(randomFloats(rng, size), offset + r * stride);
  }
  const buffer = storageBuffer(gpu, host.length);
  gpu.device.queue.writeBuffer(buffer, 0, host);
  return { view: { buffer, offset, runStride: stride }, host, size } satisfies Operand;
}

const BUILD = {
  forward: (gpu: Gpu, runs: number, shape: Conv2dShape, v: TensorView[], t?: Partial<ConvTiling>) =>
    conv2dForwardKernel(gpu, { runs, shape, x: v[0], w: v[1], y: v[2] }, t),
  backwardInput: (
    gpu: Gpu,
    runs: number,
    shape: Conv2dShape,
    v: TensorView[],
    t?: Partial<ConvTiling>,
  ) => conv2dBackwardInputKernel(gpu, { runs, shape, dy: v[0], w: v[1], dx: v[2] }, t),
  backwardWeight: (
    gpu: Gpu,
    runs: number,
    shape: Conv2dShape,
    v: TensorView[],
    t?: Partial<ConvTiling>,
  ) => conv2dBackwardWeightKernel(gpu, { runs, shape, x: v[0], dy: v[1], dw: v[2] }, t),
};

/** Sizes of A, B, C, the reference, and the depth of each output's sum. */
function product(p: ConvProduct, s: Conv2dShape) {
  const { oh, ow } = convOutputShape(s);
  const x = s.n * s.h * s.w * s.cin, y = s.n * oh * ow * s.cout, w = s.k * s.k * s.cin * s.cout;
  switch (p) {
    case "forward":
      return { sizes: [x, w, y], ref: conv2dForward, depth: s.k * s.k * s.cin };
    case "backwardInput":
      return { sizes: [y, w, x], ref: conv2dBackwardInput, depth: s.k * s.k * s.cout };
    case "backwardWeight":
      return { sizes: [x, y, w], ref: conv2dBackwardWeight, depth: s.n * oh * ow };
  }
}

async function check(
  gpu: Gpu,
  rng: Rng,
  p: ConvProduct,
  name: string,
  shape: Conv2dShape,
  runs: number,
  layout: Layout,
  tiling?: Partial<ConvTiling>,
): Promise<void> {
  const { sizes, ref, depth } = product(p, shape);
  // Only the input batch (x, operand 0 of forward and backwardWeight) is ever shared.
  const sharedOk = layout === "shared" && p !== "backwardInput";
  const lay = (
    which: number,
  ) => (layout === "shared" && !(sharedOk && which === 0) ? "aligned" : layout);
  const a = operand(gpu, rng, lay(0), 0, sizes[0], runs);
  const b = operand(gpu, rng, lay(1), 1, sizes[1], runs);
  const [cOff, cStride] = place(lay(2), 2, sizes[2]);
  const cLen = cOff + (runs - 1) * cStride + sizes[2] + 3;
  const c = storageBuffer(gpu, cLen);
  poison(gpu, c);
  const cView = { buffer: c, offset: cOff, runStride: cStride };
  const views: [TensorView, TensorView, TensorView] = [a.view, b.view, cView];
  const t = chooseConvTiling(p, shape, runs, views, tiling);
  const what = `${p} ${name} R=${runs} ${layout} (${t.tm}x${t.tn} wg ${t.wg} tc ${t.tc} ` +
    `vec4 A=${t.vecA} B=${t.vecB} C=${t.vecC})`;
  runDispatches(gpu, [BUILD[p](gpu, runs, shape, views, tiling)]);
  const got = await readFloats(gpu, c, cLen);
  const written = new Uint8Array(cLen);
  for (let r = 0; r < runs; r++) {
    const slice = (o: Operand) =>
      runSlice(o.host.subarray(o.view.offset), r, o.view.runStride, o.size);
    const want = ref(slice(a), slice(b), shape);
    const start = cOff + r * cStride;
    assertClose(
      got.subarray(start, start + sizes[2]),
      want,
      1e-4,
      1e-5 * Math.sqrt(depth),
      `${what} run ${r}`,
    );
    written.fill(1, start, start + sizes[2]);
  }
  for (let i = 0; i < cLen; i++) {
    if (!written[i] && !Number.isNaN(got[i])) {
      throw new Error(`${what}: wrote outside the output at ${i}`);
    }
  }
  for (const buf of [a.view.buffer, b.view.buffer, c]) buf.destroy();
}

/**
 * Tilings beside the default, one per case below: a full-size block off the default (ragged
 * edges, no shrinking), the direct forward at every shape, small or odd blocks, a small and a
 * large depth split (dW), so each code path meets the vec4 and the scalar layouts.
 */
const EXTRA: Record<ConvProduct, [Partial<ConvTiling>, Partial<ConvTiling>]> = {
  forward: [{ tm: 8, wg: 32, window: false }, { window: true, tm: 3 }],
  backwardInput: [{ tm: 8, wg: 32 }, { tm: 5, tn: 4, wg: 16 }],
  backwardWeight: [{ wg: 8, tn: 4 }, { tc: 1, tm: 3, wg: 32 }],
};

for (const p of ["forward", "backwardInput", "backwardWeight"] as const) {
  const cases: [runs: number, layout: Layout, tiling: Partial<ConvTiling>][] = [
    [1, "aligned", {}],
    [1, "odd", EXTRA[p][0]],
    [3, "shared", EXTRA[p][1]],
    [3, "odd", {}],
  ];
  for (const runs of [1, 3]) {
    gpuTest(
      `conv2d ${p} R=${runs} matches the reference (K=3/1, stride 1/2, ragged shapes)`,
      async (gpu) => {
        const rng = freshRng(`conv2d ${p} R=${runs}`);
        for (const [name, shape] of SHAPES) {
          for (const [r, layout, tiling] of cases) {
            if (r === runs) await check(gpu, rng, p, name, shape, runs, layout, tiling);
          }
        }
      },
    );
  }
}
