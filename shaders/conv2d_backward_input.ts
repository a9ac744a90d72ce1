/**
 * Backward convolution to the input, dx = the transposed convolution of dy with w, over R runs,
 * as an implicit GEMM: rows = input pixels, cols = Cin, depth = taps × Cout (dy and wᵀ both vec4
 * along Cout), over the register block of `register_block.ts`. Input pixels are enumerated by
 * stride class (ih % s, iw % s), class-major, a block never straddling a class: every pixel of a
 * class is reached by the same taps (kh ≡ ih + pad mod s), so the tap loops visit only those and
 * stride 2 does no masked-out work (a K=1 stride-2 dx writes zeros in 3 of 4 classes).
 *
 * @module
 */

import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";
import {
  type BlockOperand,
  blockStep,
  blockStores,
  indent,
  lineBases,
  range,
  type RegisterBlock,
} from "./register_block.ts";
import {
  convBlockIndex,
  convDispatch,
  convShader,
  type ConvSpecBase,
  pixelOperand,
  tapAddress,
  walk,
} from "./conv2d.ts";
import type { ConvTiling } from "./conv2d_tiling.ts";

/** Backward to the input: dx = the transposed convolution of dy with w; dx is overwritten. */
export interface Conv2dBackwardInputSpec extends ConvSpecBase {
  /** [N, OH, OW, Cout]. */
  dy: TensorView;
  w: TensorView;
  /** [N, H, W, Cin]; overwritten. */
  dx: TensorView;
}

/**
 * The block's stride class (qh, qw), its pixel count `cnt` and first row `i0`: classes are
 * class-major, ceil(count / tm) blocks each.
 */
function strideClass(tm: number): string[] {
  return [
    `let s = u.stride;`,
    `// Find the block's stride class: classes are class-major, ceil(count / tm) blocks each.`,
    `var cls = 0u;`,
    `var first = 0u;`,
    `var hq = 1u;`,
    `var wq = 1u;`,
    `var found = false;`,
    `for (var c = 0u; c < s * s; c++) {`,
    `  let h1 = select(0u, (u.h - c / s + s - 1u) / s, u.h > c / s);`,
    `  let w1 = select(0u, (u.w - c % s + s - 1u) / s, u.w > c % s);`,
    `  let nb = (u.n * h1 * w1 + ${tm - 1}u) / ${tm}u;`,
    `  if (!found && rb < first + nb) {`,
    `    found = true;`,
    `    cls = c;`,
    `    hq = h1;`,
    `    wq = w1;`,
    `  }`,
    `  if (!found) { first += nb; }`,
    `}`,
    `let qh = cls / s;`,
    `let qw = cls % s;`,
    `let cnt = u.n * hq * wq;`,
    `let i0 = (rb - first) * ${tm}u;`,
  ];
}

/** The block: dy along Cout per input pixel's tap source, wᵀ (rows of w) along Cout per ci. */
function inputBlock(t: ConvTiling): [RegisterBlock, string[]] {
  const { tm, tn, vecA, vecB } = t;
  const a = pixelOperand("dy", vecA, tm, "co");
  const b: BlockOperand = {
    reg: "b",
    array: "w",
    vec: vecB,
    along: "depth",
    lines: tn,
    index: (c, pp) => `bc${c} + wt + co${vecB ? " / 4u" : pp ? ` + ${pp}u` : ""}`,
  };
  // B = wᵀ: column ci is row ci of every tap's Cin×Cout slab, contiguous along the depth.
  const setup = lineBases(b, {
    name: "bc",
    base: "bBase",
    start: "j0",
    limit: "u.cin",
    depth: "u.cout",
  });
  return [{ tm, tn, ku: vecA || vecB ? 4 : 1, a, b }, setup];
}

/** WGSL of dx at tiling `t` in `precision` (vec4 tilings are float32 only). */
export function conv2dBackwardInputWgsl(t: ConvTiling, precision: Precision = "f32"): string {
  const { tm, vecA, vecB, vecC } = t;
  if (vecC && t.tn % 4) {
    throw new Error(`conv2d: vec4 B/C along the block's columns needs tn % 4 == 0, got ${t.tn}`);
  }
  const R = range(tm);
  const [blk, setup] = inputBlock(t);
  const aRow = vecA ? "(u.cout / 4u)" : "u.cout";
  const pix = walk(R, "min(i0, cnt - 1u)", "hq", "wq", (r) => [
    `let nn${r} = min(pn, u.n - 1u);`,
    `let nh${r} = nn${r} * u.oh;`,
    `let ph${r} = py;`,
    `let pw${r} = px;`,
    `let o${r} = (nn${r} * u.h + qh + s * py) * u.w + qw + s * px;`,
  ]);
  const tap = R.flatMap((r) =>
    tapAddress(r, [`i32(ph${r}) + dh`, `i32(pw${r}) + dw`], [`nh${r}`, "u.oh", "u.ow"], aRow)
  );
  const stores = blockStores(blk, {
    array: "dx",
    vec: vecC,
    cols: "u.cin",
    valid: (r) => `i0 + ${r}u < cnt`,
    row: (r) => `o${r}`,
  });
  return convShader("backwardInput", t, precision, {
    block: [...convBlockIndex(t), ...strideClass(tm)],
    setup: [...setup, ...pix],
    blk,
    loop: `  for (var kh = (qh + u.pad) % s; kh < u.k; kh += s) {
    let dh = (i32(qh + u.pad) - i32(kh)) / i32(s);
    for (var kw = (qw + u.pad) % s; kw < u.k; kw += s) {
      let dw = (i32(qw + u.pad) - i32(kw)) / i32(s);
      let wt = (kh * u.k + kw) * u.cin * ${vecB ? "(u.cout / 4u)" : "u.cout"};
${indent(tap, 6)}
      for (var co = 0u; co < u.cout; co += ${blk.ku}u) {
${indent(blockStep(blk), 8)}
      }
    }
  }
`,
    epilogue: stores,
  });
}

/** dx = reference `conv2dBackwardInput` per run; dx is overwritten. */
export function conv2dBackwardInputKernel(
  gpu: Gpu,
  spec: Conv2dBackwardInputSpec,
  tiling?: Partial<ConvTiling>,
): Dispatch {
  return convDispatch(gpu, "backwardInput", spec, conv2dBackwardInputWgsl, tiling);
}
