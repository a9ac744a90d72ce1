/**
 * Tests of the conv2d kernels against the float64 references of `reference/conv.ts`: all three
 * products at R = 1 and R = 3, K = 3 and K = 1 at stride 1 and 2, on shapes off every tile
 * size (odd H/W, channel counts 1, 3, 5, 17), with aligned views (vec4 paths), odd offsets and
 * strides (scalar fallback) and an input shared by all runs (runStride 0), outputs poisoned
 * with NaN and checked untouched outside their views; then every product and code path again
 * in df64 on small shapes (the scalar layout, fresh inputs exact in df64).
 *
 * @module
 */

import {
  type Dispatch,
  type Gpu,
  poison,
  readReals,
  realBuffer,
  runDispatches,
  uploadReals,
} from "./gpu.ts";
import {
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dForward,
  type Conv2dShape,
  convOutputShape,
} from "../reference/conv.ts";
import { chooseConvTiling, type ConvProduct, type ConvTiling } from "./conv2d_tiling.ts";
import { conv2dForwardKernel } from "./conv2d_forward.ts";
import { conv2dBackwardInputKernel } from "./conv2d_backward_input.ts";
import { conv2dBackwardWeightKernel } from "./conv2d_backward_weight.ts";
import { assertClose, freshRng } from "../core/test_util.ts";
import type { Rng } from "../core/prng.ts";
import type { TensorView } from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";
import { newReals, type Precision, randomReals, type Reals } from "./precision.ts";

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
  host: Reals;
  size: number;
}

function place(layout: Layout, which: number, size: number): [offset: number, stride: number] {
  if (layout === "odd") return [2 * which + 1, size + 2 * which + 1];
  const stride = Math.ceil(size / 4) * 4 + 4 * which;
  return [4 * which, layout === "shared" && which === 0 ? 0 : stride];
}

/** Where operand `which` of a case lives, and what it holds. */
interface Placement {
  precision: Precision;
  layout: Layout;
  which: number;
  size: number;
  runs: number;
}

function operand(gpu: Gpu, rng: Rng, { precision, layout, which, size, runs }: Placement) {
  const [offset, stride] = place(layout, which, size);
  const host = newReals(precision, offset + (runs - 1) * stride + size + 5).fill(NaN);
  for (let r = 0; r < (stride === 0 ? 1 : runs); r++) {
    host.set(randomReals(rng, precision, size), offset + r * stride);
  }
  const buffer = uploadReals(gpu, precision, host);
  return { view: { buffer, offset, runStride: stride }, host, size } satisfies Operand;
}

type Build = (
  gpu: Gpu,
  precision: Precision,
  runs: number,
  shape: Conv2dShape,
  v: TensorView[],
  t?: Partial<ConvTiling>,
) => Dispatch;

const BUILD: Record<ConvProduct, Build> = {
  forward: (gpu, precision, runs, shape, v, t) =>
    conv2dForwardKernel(gpu, { precision, runs, shape, x: v[0], w: v[1], y: v[2] }, t),
  backwardInput: (gpu, precision, runs, shape, v, t) =>
    conv2dBackwardInputKernel(gpu, { precision, runs, shape, dy: v[0], w: v[1], dx: v[2] }, t),
  backwardWeight: (gpu, precision, runs, shape, v, t) =>
    conv2dBackwardWeightKernel(gpu, { precision, runs, shape, x: v[0], dy: v[1], dw: v[2] }, t),
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

/**
 * df64 tolerance, relative to Σ|a·b| of each output (the scale of a dot product's rounding, not
 * of its possibly cancelling value): a df64 product rounds to ≤ 1.3e-14 relative and a sum to
 * ≤ 6.7e-15 (df64.ts), so a sum of d products errs by ≤ (1.3e-14 + d·6.7e-15)·Σ|a·b|, 5e-13
 * for the deepest sequential sum here (dx of the first layer, 72 terms; dW's pixels are split
 * over its workgroup's invocations). The float64 reference adds ~d·1e-16, negligible.
 */
const DF64_TOL = 1e-12;

/**
 * Checks one output run: float32 at the existing absolute/relative tolerance; df64 and f64 as
 * |got - want| / Σ|a·b| (`scale`, 1 where the output has no terms and must be 0) <=
 * {@link DF64_TOL}. Returns the worst such ratio (0 for float32).
 */
function assertOutput(
  precision: Precision,
  got: Reals,
  want: Float64Array,
  scale: Float64Array,
  depth: number,
  what: string,
): number {
  if (precision === "f32") {
    assertClose(got, want, 1e-4, 1e-5 * Math.sqrt(depth), what);
    return 0;
  }
  const over = (v: ArrayLike<number>) => Float64Array.from(scale, (m, i) => v[i] / (m || 1));
  const g = over(got), w = over(want);
  assertClose(g, w, 0, DF64_TOL, what);
  return g.reduce((worst, v, i) => Math.max(worst, Math.abs(v - w[i])), 0);
}

/** Runs one case and checks every run and the poison outside them; returns the worst error. */
async function check(
  gpu: Gpu,
  rng: Rng,
  p: ConvProduct,
  name: string,
  shape: Conv2dShape,
  runs: number,
  layout: Layout,
  tiling?: Partial<ConvTiling>,
  precision: Precision = "f32",
): Promise<number> {
  const { sizes, ref, depth } = product(p, shape);
  // Only the input batch (x, operand 0 of forward and backwardWeight) is ever shared.
  const sharedOk = layout === "shared" && p !== "backwardInput";
  const lay = (
    which: number,
  ) => (layout === "shared" && !(sharedOk && which === 0) ? "aligned" : layout);
  const at = (which: number) => ({
    precision,
    layout: lay(which),
    which,
    size: sizes[which],
    runs,
  });
  const a = operand(gpu, rng, at(0));
  const b = operand(gpu, rng, at(1));
  const [cOff, cStride] = place(lay(2), 2, sizes[2]);
  const cLen = cOff + (runs - 1) * cStride + sizes[2] + 3;
  const c = realBuffer(gpu, precision, cLen);
  poison(gpu, c);
  const cView = { buffer: c, offset: cOff, runStride: cStride };
  const views: [TensorView, TensorView, TensorView] = [a.view, b.view, cView];
  const t = chooseConvTiling(p, shape, runs, views, tiling, precision);
  const what = `${precision} ${p} ${name} R=${runs} ${layout} (${t.tm}x${t.tn} wg ${t.wg} ` +
    `tc ${t.tc} vec4 A=${t.vecA} B=${t.vecB} C=${t.vecC} window=${t.window})`;
  runDispatches(gpu, [BUILD[p](gpu, precision, runs, shape, views, tiling)]);
  const got = await readReals(gpu, precision, c, cLen);
  const written = new Uint8Array(cLen);
  let worst = 0;
  for (let r = 0; r < runs; r++) {
    const slice = (o: Operand) => {
      const start = o.view.offset + r * o.view.runStride;
      return o.host.subarray(start, start + o.size);
    };
    const want = ref(slice(a), slice(b), shape);
    const scale = ref(slice(a).map(Math.abs), slice(b).map(Math.abs), shape);
    const start = cOff + r * cStride;
    const out = got.subarray(start, start + sizes[2]);
    worst = Math.max(worst, assertOutput(precision, out, want, scale, depth, `${what} run ${r}`));
    written.fill(1, start, start + sizes[2]);
  }
  for (let i = 0; i < cLen; i++) {
    if (!written[i] && !Number.isNaN(got[i])) {
      throw new Error(`${what}: wrote outside the output at ${i}`);
    }
  }
  for (const buf of [a.view.buffer, b.view.buffer, c]) buf.destroy();
  return worst;
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

/**
 * df64 shapes (small: df64 runs 12–17x slower than float32, and lavapipe is slow): the direct
 * forward (K=3 s1), the first layer (Cin 1: tc 1, scalar window), K=3 s2 (GEMM forward, dx
 * with taps in every stride class), K=1 s2 (dx classes without a tap write zeros).
 */
const DF64_SHAPES: [string, Conv2dShape][] = [
  ["K=3 s1 4->6", { n: 2, h: 6, w: 7, cin: 4, cout: 6, k: 3, stride: 1, pad: 1 }],
  ["K=3 s1 1->8 first layer", { n: 3, h: 8, w: 6, cin: 1, cout: 8, k: 3, stride: 1, pad: 1 }],
  ["K=3 s2 5->4", { n: 2, h: 7, w: 8, cin: 5, cout: 4, k: 3, stride: 2, pad: 1 }],
  ["K=1 s2 6->8", { n: 4, h: 6, w: 6, cin: 6, cout: 8, k: 1, stride: 2, pad: 0 }],
];

for (const p of ["forward", "backwardInput", "backwardWeight"] as const) {
  gpuTest(`conv2d ${p} in df64 matches the float64 reference to 1e-12 of Σ|a·b|`, async (gpu) => {
    const rng = freshRng(`conv2d ${p} df64`);
    // The default and both extra tilings: GEMM and direct forward, full and shrunk blocks, one
    // and several reduction passes (dW), odd views and a shared input.
    const cases: [runs: number, layout: Layout, tiling: Partial<ConvTiling>][] = [
      [1, "odd", {}],
      [1, "odd", EXTRA[p][0]],
      [3, "shared", EXTRA[p][1]],
    ];
    let worst = 0;
    for (const [name, shape] of DF64_SHAPES) {
      for (const [runs, layout, tiling] of cases) {
        const err = await check(gpu, rng, p, name, shape, runs, layout, tiling, "df64");
        worst = Math.max(worst, err);
      }
    }
    console.error(`conv2d ${p} df64: worst |error| / Σ|a·b| ${worst.toExponential(2)}`);
  });
}
