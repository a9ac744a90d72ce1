/**
 * Forward convolution y = conv(x, w) over R runs, as an implicit GEMM: rows = output pixels,
 * cols = Cout, depth = taps × Cin, over the register block of `register_block.ts`. Two kernels:
 * - GEMM: per tap, tm input addresses clamped into the image with validity masks, then x as
 *   vec4 along Cin (select() by the mask, so padding costs no branch) and w rows as vec4 along
 *   Cout. Used at stride 2 and for K = 1.
 * - direct (`window`), for K > 1 at stride 1: a block is tm consecutive outputs of one image
 *   row, and per kernel row the (tm-1)*stride + K input columns are loaded once for all K taps;
 *   chosen because it beat the GEMM by 5–15% at stride 1 and lost at stride 2
 *   (docs/results/kernel-variants.md).
 *
 * @module
 */

import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";
import {
  blockFma,
  blockStep,
  blockStores,
  indent,
  operandLoads,
  range,
  type RegisterBlock,
} from "./register_block.ts";
import {
  convBlockIndex,
  convDispatch,
  convShader,
  type ConvSpecBase,
  coutOperand,
  pixelOperand,
  tapAddress,
  walk,
} from "./conv2d.ts";
import type { ConvTiling } from "./conv2d_tiling.ts";

/** Forward: y = conv(x, w) per run; x may be shared by all runs (runStride 0). */
export interface Conv2dForwardSpec extends ConvSpecBase {
  /** Input, NHWC [N, H, W, Cin]. */
  x: TensorView;
  /** Weights [K*K*Cin, Cout]. */
  w: TensorView;
  /** Output, NHWC [N, OH, OW, Cout]; overwritten. */
  y: TensorView;
}

/** The block of both kernels: x along Cin (`lines` pixels or window columns), w across Cout. */
function forwardBlock(t: ConvTiling, lines: number, wRow: string): [RegisterBlock, string[]] {
  const ku = t.vecA ? 4 : 1;
  const a = pixelOperand("x", t.vecA, lines, "ci");
  const [b, setup] = coutOperand("w", t.vecB, t.tn, (pp) => `(${wRow}${pp ? ` + ${pp}u` : ""})`);
  return [{ tm: t.tm, tn: t.tn, ku, a, b }, setup];
}

/** y's stores: row r is output pixel `o{r}`. */
function forwardStores(
  blk: RegisterBlock,
  t: ConvTiling,
  valid: (r: number) => string,
): string[] {
  return blockStores(blk, { array: "y", vec: t.vecC, cols: "u.cout", valid, row: (r) => `o${r}` });
}

/** The GEMM forward: one block of tm output pixels × tn channels per invocation. */
function gemmForwardWgsl(t: ConvTiling, precision: Precision): string {
  const { tm, vecA } = t;
  const R = range(tm);
  const [blk, setup] = forwardBlock(t, tm, "wr + ci");
  const aRow = vecA ? "(u.cin / 4u)" : "u.cin";
  // Row r's pixel (n, oh, ow), walked from the block's first pixel.
  const pix = walk(R, "min(i0, u.rows - 1u)", "u.oh", "u.ow", (r) => [
    `let nh${r} = min(pn, u.n - 1u) * u.h;`,
    `let ih${r} = i32(py * u.stride) - i32(u.pad);`,
    `let iw${r} = i32(px * u.stride) - i32(u.pad);`,
    `let o${r} = i0 + ${r}u;`,
  ]);
  const tap = R.flatMap((r) =>
    tapAddress(r, [`ih${r} + i32(kh)`, `iw${r} + i32(kw)`], [`nh${r}`, "u.h", "u.w"], aRow)
  );
  return convShader("forward", t, precision, {
    block: convBlockIndex(t, `rb * ${tm}u`),
    setup: [...setup, ...pix],
    blk,
    loop: `  for (var kh = 0u; kh < u.k; kh++) {
    for (var kw = 0u; kw < u.k; kw++) {
      let wr = (kh * u.k + kw) * u.cin;
${indent(tap, 6)}
      for (var ci = 0u; ci < u.cin; ci += ${blk.ku}u) {
${indent(blockStep(blk), 8)}
      }
    }
  }
`,
    epilogue: forwardStores(blk, t, (r) => `i0 + ${r}u < u.rows`),
  });
}

/**
 * The direct forward ({@link ConvTiling.window}) with K and stride compiled in: the window's
 * columns are loaded once per kernel row, and tap kw of row r reads column r·stride + kw.
 */
function windowForwardWgsl(
  t: ConvTiling,
  dims: Record<string, number>,
  precision: Precision,
): string {
  const { tm, vecA } = t;
  const K = dims.k, S = dims.stride;
  if (!K || !S) throw new Error("conv2d forward window: k and stride are compile-time");
  const J = range((tm - 1) * S + K);
  const [blk, setup] = forwardBlock(t, J.length, "wr");
  const aRow = vecA ? "(u.cin / 4u)" : "u.cin";
  const cols = J.flatMap((j) => [
    `let cx${j} = ix0 + ${j};`,
    `let cok${j} = u32(cx${j}) < u.w;`,
    `let cw${j} = min(u32(cx${j}), u.w - 1u) * ${aRow};`,
  ]);
  const tap = J.flatMap((j) => [`let a${j}b = rowb + cw${j};`, `let ok${j} = rowok && cok${j};`]);
  const body = operandLoads(blk.a, 0);
  for (const kw of range(K)) {
    const step = [
      ...range(blk.ku).flatMap((pp) => operandLoads(blk.b, pp)),
      ...blockFma(blk, (r) => r * S + kw),
    ];
    const wr = `let wr = (kh * ${K}u + ${kw}u) * u.cin + ci;`;
    body.push(`{`, ...[wr, ...step].map((l) => `  ${l}`), `}`);
  }
  const block = [
    ...convBlockIndex(t),
    `let wb = (u.ow + ${tm - 1}u) / ${tm}u;`,
    `let line = rb / wb;`,
    `let ow0 = (rb % wb) * ${tm}u;`,
    `let nh = min(line / u.oh, u.n - 1u) * u.h;`,
    `let iy0 = i32((line % u.oh) * ${S}u) - i32(u.pad);`,
    `let ix0 = i32(ow0 * ${S}u) - i32(u.pad);`,
  ];
  const pixels = range(tm).map((r) => `let o${r} = line * u.ow + ow0 + ${r}u;`);
  return convShader("forward", t, precision, {
    block,
    setup: [...setup, ...pixels, ...cols],
    blk,
    loop: `  for (var kh = 0u; kh < ${K}u; kh++) {
    let py = iy0 + i32(kh);
    let rowok = u32(py) < u.h;
    let rowb = aBase + (nh + min(u32(py), u.h - 1u)) * u.w * ${aRow};
${indent(tap, 4)}
    for (var ci = 0u; ci < u.cin; ci += ${blk.ku}u) {
${indent(body, 6)}
    }
  }
`,
    epilogue: forwardStores(blk, t, (r) => `ow0 + ${r}u < u.ow`),
  });
}

/**
 * WGSL of the forward at tiling `t` in `precision` (vec4 tilings are float32 only). `dims` are
 * the uniform's values; only the direct forward reads them, compiling `k` and `stride` in.
 */
export function conv2dForwardWgsl(
  t: ConvTiling,
  precision: Precision = "f32",
  dims: Record<string, number> = {},
): string {
  if ((t.vecB || t.vecC) && t.tn % 4) {
    throw new Error(`conv2d: vec4 B/C along the block's columns needs tn % 4 == 0, got ${t.tn}`);
  }
  return t.window ? windowForwardWgsl(t, dims, precision) : gemmForwardWgsl(t, precision);
}

/** Forward = reference `conv2dForward` per run. `tiling` overrides (benchmarks, tests). */
export function conv2dForwardKernel(
  gpu: Gpu,
  spec: Conv2dForwardSpec,
  tiling?: Partial<ConvTiling>,
): Dispatch {
  return convDispatch(gpu, "forward", spec, conv2dForwardWgsl, tiling);
}
