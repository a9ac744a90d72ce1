/**
 * How the three convolution kernels block their work (`conv2d_forward.ts`,
 * `conv2d_backward_input.ts`, `conv2d_backward_weight.ts`). Default choices, each the fastest of
 * the variants measured on lavapipe (docs/results/kernel-variants.md, "## convolution"); `deno
 * task tune` replaces them per shape where a verified variant is faster on the adapter at hand
 * (shaders/tilings.ts):
 * - forward and dx: 8×16 blocks, 64 invocations a workgroup (16×16 spills its accumulators);
 * - the direct forward for K > 1 at stride 1: tm = OW split evenly into blocks of ≤ 8, tn 8, or
 *   16 when Cin < 4 (it loads K× more weights per input value);
 * - dW: 16 (tap, channel) rows × 16 Cout, tc = 16 channels per tap where Cin allows, depth split
 *   over 16 invocations, or 32 when a dispatch has fewer than 8 blocks;
 * - dispatches of fewer than 64 blocks halve tm (forward, dx) down to 4, so both cores get work.
 * vec4 is kept per operand only in float32 and where aligned (channels, offset, run stride and
 * buffer size multiples of 4); df64 and f64 always get the scalar layout with the same blocks.
 *
 * @module
 */

import { ceilDiv } from "./binding.ts";
import type { TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";
import { type Conv2dShape, convOutputShape } from "../core/conv_shape.ts";
import { range } from "./register_block.ts";

/** The three products: forward (x, w) -> y, dx from (dy, w), dW from (x, dy). */
export type ConvProduct = "forward" | "backwardInput" | "backwardWeight";

/**
 * How a kernel blocks and loads (compile-time). In GEMM terms every product is
 * C[rows × cols] = A · B over a depth:
 * - forward: rows = output pixels, cols = Cout, depth = taps × Cin; A = x, B = w, C = y;
 * - backwardInput: rows = input pixels, cols = Cin, depth = taps × Cout; A = dy, B = wᵀ, C = dx;
 * - backwardWeight: rows = (tap, ci), cols = Cout, depth = output pixels; A = x, B = dy, C = dw.
 */
export interface ConvTiling {
  /** Rows of C per invocation (backwardWeight: a multiple of `tc`, `tm / tc` taps). */
  tm: number;
  /** Columns of C per invocation. */
  tn: number;
  /**
   * Invocations per workgroup: independent blocks (forward, backwardInput) or, for
   * backwardWeight, invocations splitting one block's depth, summed in workgroup memory.
   */
  wg: number;
  /** backwardWeight: input channels per tap in a block (divides Cin). */
  tc: number;
  /** vec4 loads of A along its contiguous dimension (channels). */
  vecA: boolean;
  /** vec4 loads of B along its contiguous dimension (Cout). */
  vecB: boolean;
  /** vec4 stores of C along its columns (forward, backwardInput). */
  vecC: boolean;
  /**
   * forward only: the direct kernel. A block is `tm` consecutive outputs of one image row, and
   * the (tm-1)*stride + K input columns of a kernel row are loaded once for all K taps of
   * that row (K and stride compiled in).
   */
  window: boolean;
}

/** Fewer blocks than this (8 SIMD batches of 8) and the forward/backwardInput block shrinks. */
const MIN_BLOCKS = 64;

const ok4 = (v: TensorView) =>
  v.offset % 4 === 0 && v.runStride % 4 === 0 && v.buffer.size % 16 === 0;

/** Largest of `candidates` dividing `n`, else undefined. */
const divisor = (n: number, candidates: number[]) => candidates.find((c) => n % c === 0);

/** Columns of C: Cin for backwardInput, Cout otherwise. */
export function convColumns(product: ConvProduct, shape: Conv2dShape): number {
  return product === "backwardInput" ? shape.cin : shape.cout;
}

/** Blocks of rows of backwardInput's class-major pixel enumeration. */
function inputRowBlocks(s: Conv2dShape, tm: number): number {
  let blocks = 0;
  for (let qh = 0; qh < s.stride; qh++) {
    for (let qw = 0; qw < s.stride; qw++) {
      const hq = Math.max(0, Math.ceil((s.h - qh) / s.stride));
      const wq = Math.max(0, Math.ceil((s.w - qw) / s.stride));
      blocks += ceilDiv(s.n * hq * wq, tm);
    }
  }
  return blocks;
}

/** Blocks of rows of C (each tm rows) a dispatch of `product` covers per run. */
export function rowBlocks(product: ConvProduct, shape: Conv2dShape, t: ConvTiling): number {
  const { oh, ow } = convOutputShape(shape);
  if (product === "backwardWeight") {
    return ceilDiv(shape.k * shape.k, t.tm / t.tc) * (shape.cin / t.tc);
  }
  if (product === "backwardInput") return inputRowBlocks(shape, t.tm);
  return t.window ? shape.n * oh * ceilDiv(ow, t.tm) : ceilDiv(shape.n * oh * ow, t.tm);
}

/** dW: tc, tm and the depth split where not overridden, then the vec4 choices. */
function weightTiling(
  t: ConvTiling,
  shape: Conv2dShape,
  runs: number,
  [a, b]: TensorView[],
  override: Partial<ConvTiling>,
  f32: boolean,
): void {
  const { cin, cout, k } = shape;
  if (override.tc === undefined) {
    t.tc = cin % 4 === 0
      ? divisor(cin, [16, 12, 8, 4])!
      : divisor(cin, range(16).reverse().map((i) => i + 1))!;
  }
  if (override.tm === undefined) {
    t.tm = t.tc * Math.max(1, Math.min(k * k, Math.floor(16 / t.tc)));
  }
  if (override.wg === undefined) {
    const blocks = rowBlocks("backwardWeight", shape, t) * ceilDiv(cout, t.tn) * runs;
    t.wg = blocks < 8 ? 32 : 16;
  }
  t.vecA &&= f32 && cin % 4 === 0 && t.tc % 4 === 0 && ok4(a);
  t.vecB &&= f32 && cout % 4 === 0 && t.tn % 4 === 0 && ok4(b);
  t.vecC = false;
  t.window = false;
}

/** forward and dx: the block shrunk for small dispatches, then the vec4 choices. */
function gemmTiling(
  t: ConvTiling,
  product: ConvProduct,
  shape: Conv2dShape,
  runs: number,
  [a, b, c]: TensorView[],
  override: Partial<ConvTiling>,
  f32: boolean,
): void {
  const { cin, cout } = shape;
  const cols = convColumns(product, shape);
  const blocks = () => rowBlocks(product, shape, t) * ceilDiv(cols, t.tn) * runs;
  while (override.tm === undefined && t.tm > 4 && blocks() < MIN_BLOCKS) {
    t.tm = Math.ceil(t.tm / 2);
  }
  const depthVec = product === "forward" ? cin % 4 === 0 : cout % 4 === 0;
  t.vecA &&= f32 && depthVec && ok4(a);
  t.vecB &&= f32 && cout % 4 === 0 && (product === "backwardInput" || t.tn % 4 === 0) &&
    ok4(b);
  t.vecC &&= f32 && cols % 4 === 0 && t.tn % 4 === 0 && ok4(c);
  t.window &&= product === "forward";
}

/**
 * The tiling the builders use for `product` at `shape` with these views (A, B, C in the
 * order of {@link ConvTiling}), `override` applied; vec4 is kept only in float32 and where
 * aligned (df64 and f64 always get the scalar layout).
 */
export function chooseConvTiling(
  product: ConvProduct,
  shape: Conv2dShape,
  runs: number,
  views: [TensorView, TensorView, TensorView],
  override: Partial<ConvTiling> = {},
  precision: Precision = "f32",
): ConvTiling {
  const { cin, k } = shape;
  const f32 = precision === "f32";
  const { ow } = convOutputShape(shape);
  const cols = convColumns(product, shape);
  const window = override.window ?? (product === "forward" && k > 1 && shape.stride === 1);
  // The direct forward loads K× more weights per input value: narrower blocks unless the
  // input is a single channel (scalar loads, few live registers).
  const tnMax = window && cin >= 4 ? 8 : 16;
  const t: ConvTiling = {
    tm: window ? ceilDiv(ow, ceilDiv(ow, 8)) : 8,
    tn: cols % 4 === 0
      ? divisor(cols, [16, 12, 8, 4].filter((v) => v <= tnMax))!
      : Math.min(cols, tnMax),
    wg: 64,
    tc: 1,
    vecA: true,
    vecB: true,
    vecC: true,
    window,
    ...override,
  };
  if (product === "backwardWeight") weightTiling(t, shape, runs, views, override, f32);
  else gemmTiling(t, product, shape, runs, views, override, f32);
  const bad = (["tm", "tn", "wg", "tc"] as const).filter((f) =>
    !(Number.isInteger(t[f]) && t[f] >= 1)
  );
  if (bad.length || (product === "backwardWeight" && (cin % t.tc || t.tm % t.tc))) {
    throw new Error(`conv2d ${product}: bad tiling ${JSON.stringify(t)} for Cin ${cin}`);
  }
  return t;
}
