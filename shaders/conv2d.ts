/**
 * What the three convolution kernels share (NHWC activations, weights [K*K*Cin, Cout], no bias,
 * R runs per dispatch in workgroup_id.z, outputs overwritten): their binding interface, the
 * frame of their WGSL, the walk over pixels, the B operand along Cout, and the dispatch. Each
 * product is an implicit GEMM (no im2col buffer) over the register block of
 * `register_block.ts`, in its own module: `conv2d_forward.ts`, `conv2d_backward_input.ts`,
 * `conv2d_backward_weight.ts`; the tiling is `conv2d_tiling.ts`.
 *
 * Row pixels (n, oh, ow) are walked from the block's first pixel with carries: two integer
 * divisions per invocation instead of four per row, since lavapipe scalarizes vector u32
 * division (docs/results/kernel-variants.md). The shape arrives in the uniform, not compiled in
 * (one pipeline for every layer; compiling it in was slower at the K=3 layers).
 *
 * @module
 */

import { assertCounts, ceilDiv, foldedGrid, KernelInterface, type Slot } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";
import { type Conv2dShape, convOutputShape } from "../core/conv_shape.ts";
import {
  accumulators,
  type BlockOperand,
  indent,
  lineBases,
  type RegisterBlock,
} from "./register_block.ts";
import {
  chooseConvTiling,
  convColumns,
  type ConvProduct,
  type ConvTiling,
  rowBlocks,
} from "./conv2d_tiling.ts";

/** Slot names (and spec fields) of A, B, C per product. */
export const CONV_OPERANDS: Record<ConvProduct, [string, string, string]> = {
  forward: ["x", "w", "y"],
  backwardInput: ["dy", "w", "dx"],
  backwardWeight: ["x", "dy", "dw"],
};

/** A product's A, B and C views, the spec fields {@link CONV_OPERANDS} names. */
export function convViews(
  product: ConvProduct,
  spec: ConvSpecBase,
): [TensorView, TensorView, TensorView] {
  const fields = spec as unknown as Record<string, TensorView>;
  const [a, b, c] = CONV_OPERANDS[product];
  return [fields[a], fields[b], fields[c]];
}

const DIMS = [
  "n",
  "h",
  "w",
  "cin",
  "cout",
  "k",
  "stride",
  "pad",
  "oh",
  "ow",
  "rows",
  "rblocks",
  "cblocks",
  "chunk",
];

const interfaces = new Map<string, KernelInterface>();

/** The binding interface of one product with its precision and vec4 choices (memoized). */
function convInterface(product: ConvProduct, t: ConvTiling, precision: Precision): KernelInterface {
  const key = `${product} ${precision} ${t.vecA} ${t.vecB} ${t.vecC}`;
  let i = interfaces.get(key);
  if (!i) {
    const [a, b, c] = CONV_OPERANDS[product];
    const elem = (v: boolean): Slot["elem"] => (v ? "vec4<f32>" : "real");
    i = new KernelInterface(`conv2d ${product}`, {
      precision,
      dims: DIMS,
      slots: [
        { name: a, elem: elem(t.vecA) },
        { name: b, elem: elem(t.vecB) },
        { name: c, access: "read_write", elem: elem(t.vecC) },
      ],
    });
    interfaces.set(key, i);
  }
  return i;
}

/** The parts of a product's `main` in order; {@link convShader} adds the bases and accumulators. */
export interface ConvMain {
  /** Finds the block (row block, first row and column), before the run's bases. */
  block: string[];
  /** Loop-invariant lines after the bases: B's column bases, the rows' pixels or taps. */
  setup: string[];
  /** The register block whose accumulators the loop updates. */
  blk: RegisterBlock;
  /** The depth loops: WGSL indented by 2, ending with a newline. */
  loop: string;
  /** After the loop: the stores (dW: the reduction). */
  epilogue: string[];
  /** Module-scope declarations (workgroup memory). */
  decls?: string;
}

/** A product's whole shader: its interface, a comment naming the tiling, and `main`. */
export function convShader(
  product: ConvProduct,
  t: ConvTiling,
  precision: Precision,
  m: ConvMain,
): string {
  const { tm, tn, wg, vecA, vecB, vecC } = t;
  const head = [...m.block, ...convBases(product), ...m.setup, ...accumulators(m.blk)];
  return `${convInterface(product, t, precision).wgsl}
// conv2d ${product} ${tm}x${tn} wg ${wg}${product === "backwardWeight" ? ` tc ${t.tc}` : ""} ` +
    `vec4 A=${vecA} B=${vecB} C=${vecC}${m.decls ?? ""}

@compute @workgroup_size(${wg})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
${indent(head, 2)}
${m.loop}${indent(m.epilogue, 2)}
}
`;
}

/**
 * The block of a one-block-per-invocation product: `rb` (row block, returning past the last),
 * `j0` (first column) and, where given, `i0` (first row) from `rowStart`.
 */
export function convBlockIndex(t: ConvTiling, rowStart?: string): string[] {
  return [
    `let blk = (wid.y * groups.x + wid.x) * ${t.wg}u + lid;`,
    `let rb = blk / u.cblocks;`,
    `if (rb >= u.rblocks) { return; }`,
    ...(rowStart ? [`let i0 = ${rowStart};`] : []),
    `let j0 = (blk % u.cblocks) * ${t.tn}u;`,
  ];
}

/** The run and the first element of A, B and C in it (`aBase`, `bBase`, `cBase`). */
function convBases(product: ConvProduct): string[] {
  const [a, b, c] = CONV_OPERANDS[product];
  return [
    `let run = wid.z;`,
    `let aBase = at_${a}(run, 0u);`,
    `let bBase = at_${b}(run, 0u);`,
    `let cBase = at_${c}(run, 0u);`,
  ];
}

/**
 * The B operand across Cout (w in forward, dy in dW): `row(pp)` is its depth row at step pp;
 * returns the operand and its clamped column bases `bc{c}`.
 */
export function coutOperand(
  array: string,
  vec: boolean,
  tn: number,
  row: (pp: number) => string,
): [BlockOperand, string[]] {
  const stride = vec ? "(u.cout / 4u)" : "u.cout";
  const b: BlockOperand = {
    reg: "b",
    array,
    vec,
    along: "block",
    lines: tn,
    index: (c, pp) => `bc${c} + ${row(pp)} * ${stride}`,
  };
  return [b, lineBases(b, { name: "bc", base: "bBase", start: "j0", limit: "u.cout" })];
}

/**
 * The A operand of one pixel per line (x in forward, dy in dx), contiguous along its channels:
 * line i reads at `a{i}b` + the depth loop's channel `channel`, masked by `ok{i}` (padding).
 */
export function pixelOperand(
  array: string,
  vec: boolean,
  lines: number,
  channel: string,
): BlockOperand {
  return {
    reg: "a",
    array,
    vec,
    along: "depth",
    lines,
    index: (i, pp) => `a${i}b + ${channel}${vec ? " / 4u" : pp ? ` + ${pp}u` : ""}`,
    mask: (i) => `ok${i}`,
  };
}

/**
 * Line i's input pixel (`py{i}`, `px{i}` from the given i32 expressions) in an [N, h, w] image
 * whose image row starts at pixel row `nh`: its validity `ok{i}` and its clamped element index
 * `a{i}b` (`row` elements a pixel, then `plus`), so padding reads a real pixel and is masked.
 */
export function tapAddress(
  i: number,
  [py, px]: [string, string],
  [nh, h, w]: [string, string, string],
  row: string,
  plus = "",
): string[] {
  return [
    `let py${i} = ${py};`,
    `let px${i} = ${px};`,
    `let ok${i} = u32(py${i}) < ${h} && u32(px${i}) < ${w};`,
    `let a${i}b = aBase + ((${nh} + min(u32(py${i}), ${h} - 1u)) * ${w} + ` +
    `min(u32(px${i}), ${w} - 1u)) * ${row}${plus};`,
  ];
}

/**
 * WGSL walking rows `R` over consecutive pixels (pn, py, px) of an [N, hh, ww] grid from flat
 * index `first`: `row(r)` emits row r's lines, which may read pn, py, px.
 */
export function walk(
  R: number[],
  first: string,
  hh: string,
  ww: string,
  row: (r: number) => string[],
): string[] {
  const out = [
    `let g0 = ${first};`,
    `var pn = g0 / (${hh} * ${ww});`,
    `var py = (g0 / ${ww}) % ${hh};`,
    `var px = g0 % ${ww};`,
  ];
  for (const r of R) {
    out.push(...row(r));
    if (r === R.length - 1) break;
    out.push(
      `px += 1u;`,
      `if (px == ${ww}) {`,
      `  px = 0u;`,
      `  py += 1u;`,
      `  if (py == ${hh}) {`,
      `    py = 0u;`,
      `    pn += 1u;`,
      `  }`,
      `}`,
    );
  }
  return out;
}

/** The WGSL of a product at a tiling; `dims` are the uniform's values. */
export type ConvWgsl = (
  t: ConvTiling,
  precision: Precision,
  dims: Record<string, number>,
) => string;

/** What every product's spec holds besides its views. */
export interface ConvSpecBase {
  /** Arithmetic of the views' elements (default f32). */
  precision?: Precision;
  runs: number;
  shape: Conv2dShape;
}

/** The workgroup grid: one block per invocation, or (dW) one block per workgroup. */
function convGrid(
  product: ConvProduct,
  blocks: number,
  runs: number,
  wg: number,
): [number, number, number] {
  if (product !== "backwardWeight") return foldedGrid(blocks, runs, wg);
  const x = Math.min(blocks, 65535);
  if (blocks % x) throw new Error(`conv2d ${product}: ${blocks} blocks do not fold into a grid`);
  return [x, blocks / x, runs];
}

/**
 * The dispatch of one product: tiling chosen ({@link chooseConvTiling}, `override` applied),
 * uniform and the A, B, C views of `spec` bound ({@link convViews}), `wgsl` compiled.
 */
export function convDispatch(
  gpu: Gpu,
  product: ConvProduct,
  spec: ConvSpecBase,
  wgsl: ConvWgsl,
  override?: Partial<ConvTiling>,
): Dispatch {
  const { precision = "f32", runs, shape } = spec;
  const name = `conv2d ${product}`;
  assertCounts(name, { runs });
  const { oh, ow } = convOutputShape(shape);
  const { n, h, w, cin, cout, k } = shape;
  const views = convViews(product, spec), [a, b, c] = views;
  if (a.buffer === c.buffer || b.buffer === c.buffer) {
    throw new Error(`${name}: the output buffer must differ from the input buffers`);
  }
  const t = chooseConvTiling(product, shape, runs, views, override, precision);
  const xLen = n * h * w * cin, yLen = n * oh * ow * cout, wLen = k * k * cin * cout;
  const [lengths, rows] = {
    forward: [[xLen, wLen, yLen], n * oh * ow],
    backwardInput: [[yLen, wLen, xLen], n * h * w],
    backwardWeight: [[xLen, yLen, wLen], k * k * cin],
  }[product] as [number[], number];
  const cblocks = ceilDiv(convColumns(product, shape), t.tn);
  const rblocks = rowBlocks(product, shape, t);
  const chunk = product === "backwardWeight" ? ceilDiv(n * oh * ow, t.wg) : 0;
  const dims = { n, h, w, cin, cout, k, stride: shape.stride, pad: shape.pad, oh, ow };
  const all = { ...dims, rows, rblocks, cblocks, chunk };
  const [an, bn, cn] = CONV_OPERANDS[product];
  return convInterface(product, t, precision).dispatch(gpu, {
    code: wgsl(t, precision, all),
    dims: all,
    views: {
      [an]: { view: a, length: lengths[0] },
      [bn]: { view: b, length: lengths[1] },
      [cn]: { view: c, length: lengths[2] },
    },
    runs,
    workgroups: convGrid(product, rblocks * cblocks, runs, t.wg),
  });
}
