/**
 * Backward convolution to the weights, dw = im2col(x)ᵀ · dy, over R runs, as an implicit GEMM:
 * rows = (tap, ci) (tm = taps × tc channels, tc | Cin), cols = Cout, depth = the N*OH*OW output
 * pixels, over the register block of `register_block.ts` (x vec4 across the block's channels, dy
 * vec4 along Cout, one validity mask per tap and pixel). The depth is huge and blocks are few
 * (16->16 has 9), so one workgroup owns one block: its invocations split the pixels in
 * contiguous chunks, then sum their partial blocks in workgroup memory (passes of ≤ 16 KiB).
 *
 * @module
 */

import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import { type Precision, realBytes } from "./precision.ts";
import {
  type BlockOperand,
  blockStep,
  indent,
  range,
  type RegisterBlock,
} from "./register_block.ts";
import { convDispatch, convShader, type ConvSpecBase, coutOperand, tapAddress } from "./conv2d.ts";
import type { ConvTiling } from "./conv2d_tiling.ts";

/** Backward to the weights: dw = im2col(x)ᵀ · dy; dw is overwritten, not accumulated. */
export interface Conv2dBackwardWeightSpec extends ConvSpecBase {
  /** [N, H, W, Cin]; may be shared by all runs (runStride 0). */
  x: TensorView;
  dy: TensorView;
  /** [K*K*Cin, Cout]; overwritten. */
  dw: TensorView;
}

/**
 * Most bytes of workgroup memory the reduction uses per pass: WebGPU's guaranteed 16 KiB (4096
 * f32, or 2048 df64/f64 reals: twice the passes).
 */
const REDUCE_BYTES = 16384;

/**
 * The block: x across the block's rows (tap j's tc channels at `a{j}b`, masked by `ok{j}`), dy
 * across Cout at the pixel `p`.
 */
function weightBlock(t: ConvTiling): [RegisterBlock, string[]] {
  const { tm, tn, tc, vecA, vecB } = t;
  const perTap = vecA ? tc / 4 : tc;
  const tapOf = (i: number) => Math.floor(i / perTap);
  const a: BlockOperand = {
    reg: "a",
    array: "x",
    vec: vecA,
    along: "block",
    lines: tm,
    index: (i) => `a${tapOf(i)}b${i % perTap ? ` + ${i % perTap}u` : ""}`,
    mask: (i) => `ok${tapOf(i)}`,
  };
  const [b, setup] = coutOperand("dy", vecB, tn, () => "p");
  return [{ tm, tn, ku: 1, a, b }, setup];
}

/** Per tap j of the block: its (clamped) tap, and per pixel its input address and mask. */
function weightTaps(t: ConvTiling): [taps: string[], pixel: string[]] {
  const aRow = t.vecA ? "(u.cin / 4u)" : "u.cin";
  const T = range(t.tm / t.tc);
  const taps = T.flatMap((j) => [
    `let tp${j} = min(tap0 + ${j}u, u.k * u.k - 1u);`,
    `let dh${j} = i32(tp${j} / u.k) - i32(u.pad);`,
    `let dw${j} = i32(tp${j} % u.k) - i32(u.pad);`,
  ]);
  const ci0 = t.vecA ? "(ci0 / 4u)" : "ci0";
  const pixel = T.flatMap((j) =>
    tapAddress(j, [`iy + dh${j}`, `ix + dw${j}`], ["nh", "u.h", "u.w"], aRow, ` + ${ci0}`)
  );
  return [taps, pixel];
}

/** Rows of the block summed per pass of the reduction (workgroup memory ≤ REDUCE_BYTES). */
function reduceRows(t: ConvTiling, precision: Precision): number {
  const reals = REDUCE_BYTES / realBytes(precision);
  return Math.max(1, Math.min(t.tm, Math.floor(reals / (t.wg * t.tn))));
}

/** The epilogue: the wg partial blocks summed in `part`, rp rows a pass, and stored to dw. */
function reduction(t: ConvTiling, rp: number): string[] {
  const { tm, tn, tc, wg } = t;
  const out: string[] = [];
  for (let first = 0; first < tm; first += rp) {
    const rows = Math.min(rp, tm - first);
    for (const rr of range(rows)) {
      for (const c of range(tn)) {
        out.push(`part[(lid * ${rp}u + ${rr}u) * ${tn}u + ${c}u] = c${first + rr}_${c};`);
      }
    }
    out.push(
      `workgroupBarrier();`,
      `for (var o = lid; o < ${rows * tn}u; o += ${wg}u) {`,
      `  var sum = R();`,
      `  for (var j = 0u; j < ${wg}u; j++) { sum = r_add(sum, part[j * ${rp * tn}u + o]); }`,
      `  let row = ${first}u + o / ${tn}u;`,
      `  let col = j0 + o % ${tn}u;`,
      `  let tap = tap0 + row / ${tc}u;`,
      `  if (tap < u.k * u.k && col < u.cout) {`,
      `    dw[cBase + (tap * u.cin + ci0 + row % ${tc}u) * u.cout + col] = sum;`,
      `  }`,
      `}`,
      `workgroupBarrier();`,
    );
  }
  return out;
}

/** WGSL of dW at tiling `t` in `precision` (vec4 tilings are float32 only). */
export function conv2dBackwardWeightWgsl(t: ConvTiling, precision: Precision = "f32"): string {
  const { tm, tn, tc, vecA } = t;
  if ((t.vecB || t.vecC) && tn % 4) {
    throw new Error(`conv2d: vec4 B/C along the block's columns needs tn % 4 == 0, got ${tn}`);
  }
  if (!Number.isInteger(tm / tc) || (vecA && tc % 4)) {
    throw new Error(`conv2d backwardWeight: tm ${tm} / tc ${tc} (vec4 A needs tc % 4 == 0)`);
  }
  const [blk, setup] = weightBlock(t);
  const [taps, pixel] = weightTaps(t);
  const rp = reduceRows(t, precision);
  const block = [
    `let blk = wid.y * groups.x + wid.x;`,
    `let rb = blk / u.cblocks;`,
    `let j0 = (blk % u.cblocks) * ${tn}u;`,
    `let tap0 = (rb / (u.cin / ${tc}u)) * ${tm / tc}u;`,
    `let ci0 = (rb % (u.cin / ${tc}u)) * ${tc}u;`,
  ];
  return convShader("backwardWeight", t, precision, {
    block,
    setup: [...setup, ...taps],
    blk,
    loop: `  let pixels = u.n * u.oh * u.ow;
  let p0 = min(lid * u.chunk, pixels);
  let p1 = min(p0 + u.chunk, pixels);
  var pn = p0 / (u.oh * u.ow);
  var oy = (p0 / u.ow) % u.oh;
  var ox = p0 % u.ow;
  for (var p = p0; p < p1; p++) {
    let iy = i32(oy * u.stride);
    let ix = i32(ox * u.stride);
    let nh = pn * u.h;
${indent([...pixel, ...blockStep(blk)], 4)}
    ox += 1u;
    if (ox == u.ow) {
      ox = 0u;
      oy += 1u;
      if (oy == u.oh) {
        oy = 0u;
        pn += 1u;
      }
    }
  }
`,
    epilogue: reduction(t, rp),
    decls: `\nvar<workgroup> part: array<R, ${t.wg * rp * tn}>;`,
  });
}

/** dW = reference `conv2dBackwardWeight` per run; dw is overwritten, not accumulated. */
export function conv2dBackwardWeightKernel(
  gpu: Gpu,
  spec: Conv2dBackwardWeightSpec,
  tiling?: Partial<ConvTiling>,
): Dispatch {
  return convDispatch(gpu, "backwardWeight", spec, conv2dBackwardWeightWgsl, tiling);
}
