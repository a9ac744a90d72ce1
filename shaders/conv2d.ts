/**
 * 2-D convolution (NHWC activations, weights [K*K*Cin, Cout]) for the three products of a conv
 * layer: forward y = conv(x, W), backward dx and dW, R runs per dispatch, from one template.
 *
 * DESIGN NOTES (filled in from measurements below).
 *
 * @module
 */

import { assertCounts, ceilDiv, foldedGrid, KernelInterface, type Slot } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import { type Conv2dShape, convOutputShape } from "../reference/conv.ts";

/** The three products: forward (x, w) -> y, dx from (dy, w), dW from (x, dy). */
export type ConvProduct = "forward" | "backwardInput" | "backwardWeight";

/**
 * How the template blocks and loads (compile-time). In GEMM terms every product is
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
}

/** Slot names of A, B, C per product. */
const NAMES: Record<ConvProduct, [string, string, string]> = {
  forward: ["x", "w", "y"],
  backwardInput: ["dy", "w", "dx"],
  backwardWeight: ["x", "dy", "dw"],
};

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

/** The binding interface of one product with its vec4 choices (memoized). */
function convInterface(product: ConvProduct, t: ConvTiling): KernelInterface {
  const key = `${product} ${t.vecA} ${t.vecB} ${t.vecC}`;
  let i = interfaces.get(key);
  if (!i) {
    const [a, b, c] = NAMES[product];
    const elem = (v: boolean): Slot["elem"] => (v ? "vec4<f32>" : "f32");
    i = new KernelInterface(`conv2d ${product}`, {
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

const range = (n: number): number[] => [...Array(n).keys()];
const ind = (lines: string[], n: number) => lines.map((l) => " ".repeat(n) + l).join("\n");

/** Most f32 of workgroup memory the backwardWeight reduction uses per pass. */
const REDUCE_FLOATS = 4096;

/** WGSL of one product and tiling. */
export function conv2dWgsl(product: ConvProduct, t: ConvTiling): string {
  const { tm, tn, wg, vecA, vecB, vecC } = t;
  const [A, B, C] = NAMES[product];
  const R = range(tm), Cs = range(tn), C4 = range(tn >> 2);
  if (((vecB && product !== "backwardInput") || vecC) && tn % 4) {
    throw new Error(`conv2d: vec4 B/C along the block's columns needs tn % 4 == 0, got ${tn}`);
  }
  const zero = (v: boolean) => (v ? "vec4<f32>(0.0)" : "0.0");
  const u4 = (v: boolean, e: string) => (v ? `(${e} / 4u)` : e);

  // B's columns (loop invariant): clamped to the last column, skipped at the store.
  const setup: string[] = [];
  const bCols = product === "backwardInput" ? "u.cin" : "u.cout";
  if (product === "backwardInput") {
    // B = wᵀ: column ci is row ci of every tap's Cin×Cout slab, contiguous along the depth.
    for (const c of Cs) {
      setup.push(`let bc${c} = bBase + min(j0 + ${c}u, u.cin - 1u) * ${u4(vecB, "u.cout")};`);
    }
  } else if (vecB) {
    for (const c of C4) setup.push(`let bc${c} = bBase + min(j0 / 4u + ${c}u, u.cout / 4u - 1u);`);
  } else {
    for (const c of Cs) setup.push(`let bc${c} = bBase + min(j0 + ${c}u, u.cout - 1u);`);
  }
  const bAt = (c: number, pp: number): string =>
    product === "backwardInput"
      ? (vecB ? `b${c}[${pp}]` : `b${c}_${pp}`)
      : (vecB ? `b${c >> 2}_${pp}[${c & 3}]` : `b${c}_${pp}`);

  const acc = R.flatMap((r) => Cs.map((c) => `var c${r}_${c} = 0.0;`));
  const fma = (aAt: (r: number, pp: number) => string, ku: number) =>
    range(ku).flatMap((pp) =>
      R.flatMap((r) => Cs.map((c) => `c${r}_${c} += ${aAt(r, pp)} * ${bAt(c, pp)};`))
    );

  // Stores of forward / backwardInput: row r goes to pixel index `o${r}` of C.
  const stores = (valid: (r: number) => string): string[] => {
    const out: string[] = [];
    for (const r of R) {
      out.push(`if (${valid(r)}) {`);
      if (vecC) {
        for (const c of C4) {
          const v = range(4).map((x) => `c${r}_${c * 4 + x}`).join(", ");
          out.push(
            `  if (j0 / 4u + ${c}u < ${bCols} / 4u) { ` +
              `${C}[cBase + o${r} * (${bCols} / 4u) + j0 / 4u + ${c}u] = vec4<f32>(${v}); }`,
          );
        }
      } else {
        for (const c of Cs) {
          out.push(
            `  if (j0 + ${c}u < ${bCols}) { ${C}[cBase + o${r} * ${bCols} + j0 + ${c}u] = c${r}_${c}; }`,
          );
        }
      }
      out.push(`}`);
    }
    return out;
  };

  const head = `${convInterface(product, t).wgsl}
// conv2d ${product} ${tm}x${tn} wg ${wg}${product === "backwardWeight" ? ` tc ${t.tc}` : ""} ` +
    `vec4 A=${vecA} B=${vecB} C=${vecC}`;
  const bases = `let run = wid.z;
  let aBase = at_${A}(run, 0u);
  let bBase = at_${B}(run, 0u);
  let cBase = at_${C}(run, 0u);`;

  if (product === "forward") {
    const ku = vecA ? 4 : 1;
    const aRow = u4(vecA, "u.cin");
    const pix: string[] = [];
    for (const r of R) {
      pix.push(
        `let g${r} = min(i0 + ${r}u, u.rows - 1u);`,
        `let q${r} = g${r} % (u.oh * u.ow);`,
        `let nh${r} = (g${r} / (u.oh * u.ow)) * u.h;`,
        `let ih${r} = i32((q${r} / u.ow) * u.stride) - i32(u.pad);`,
        `let iw${r} = i32((q${r} % u.ow) * u.stride) - i32(u.pad);`,
        `let o${r} = i0 + ${r}u;`,
      );
    }
    const tap: string[] = [];
    for (const r of R) {
      tap.push(
        `let py${r} = ih${r} + i32(kh);`,
        `let px${r} = iw${r} + i32(kw);`,
        `let ok${r} = u32(py${r}) < u.h && u32(px${r}) < u.w;`,
        `let a${r}b = aBase + ((nh${r} + min(u32(py${r}), u.h - 1u)) * u.w + ` +
          `min(u32(px${r}), u.w - 1u)) * ${aRow};`,
      );
    }
    const body: string[] = [];
    for (const r of R) {
      body.push(
        vecA
          ? `let a${r} = select(${zero(true)}, ${A}[a${r}b + ci / 4u], ok${r});`
          : `let a${r}_0 = select(0.0, ${A}[a${r}b + ci], ok${r});`,
      );
    }
    const bRow = u4(vecB, "u.cout");
    for (const pp of range(ku)) {
      const row = `(wr + ci${pp ? ` + ${pp}u` : ""}) * ${bRow}`;
      body.push(...(vecB ? C4 : Cs).map((c) => `let b${c}_${pp} = ${B}[bc${c} + ${row}];`));
    }
    body.push(...fma((r, pp) => (vecA ? `a${r}[${pp}]` : `a${r}_0`), ku));
    return `${head}

@compute @workgroup_size(${wg})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let blk = (wid.y * groups.x + wid.x) * ${wg}u + lid;
  let rb = blk / u.cblocks;
  if (rb >= u.rblocks) { return; }
  let i0 = rb * ${tm}u;
  let j0 = (blk % u.cblocks) * ${tn}u;
  ${bases}
${ind(setup, 2)}
${ind(pix, 2)}
${ind(acc, 2)}
  for (var kh = 0u; kh < u.k; kh++) {
    for (var kw = 0u; kw < u.k; kw++) {
      let wr = (kh * u.k + kw) * u.cin;
${ind(tap, 6)}
      for (var ci = 0u; ci < u.cin; ci += ${ku}u) {
${ind(body, 8)}
      }
    }
  }
${ind(stores((r) => `i0 + ${r}u < u.rows`), 2)}
}
`;
  }

  if (product === "backwardInput") {
    // Rows are input pixels grouped by stride class (ih % s, iw % s), class-major, and a block
    // never straddles a class: every pixel of a class is reached by the same taps
    // (kh ≡ ih + pad mod s), so the tap loops visit only those (no masked-out work at s = 2).
    const ku = vecA || vecB ? 4 : 1;
    const aRow = u4(vecA, "u.cout");
    const pix: string[] = [];
    for (const r of R) {
      pix.push(
        `let g${r} = min(i0 + ${r}u, cnt - 1u);`,
        `let q${r} = g${r} % (hq * wq);`,
        `let nh${r} = (g${r} / (hq * wq)) * u.oh;`,
        `let ph${r} = q${r} / wq;`,
        `let pw${r} = q${r} % wq;`,
        `let o${r} = ((g${r} / (hq * wq)) * u.h + qh + s * ph${r}) * u.w + qw + s * pw${r};`,
      );
    }
    const tap: string[] = [];
    for (const r of R) {
      tap.push(
        `let py${r} = i32(ph${r}) + dh;`,
        `let px${r} = i32(pw${r}) + dw;`,
        `let ok${r} = u32(py${r}) < u.oh && u32(px${r}) < u.ow;`,
        `let a${r}b = aBase + ((nh${r} + min(u32(py${r}), u.oh - 1u)) * u.ow + ` +
          `min(u32(px${r}), u.ow - 1u)) * ${aRow};`,
      );
    }
    const body: string[] = [];
    for (const r of R) {
      if (vecA) body.push(`let a${r} = select(${zero(true)}, ${A}[a${r}b + co / 4u], ok${r});`);
      else {
        for (const pp of range(ku)) {
          body.push(
            `let a${r}_${pp} = select(0.0, ${A}[a${r}b + co${pp ? ` + ${pp}u` : ""}], ok${r});`,
          );
        }
      }
    }
    for (const c of Cs) {
      if (vecB) body.push(`let b${c} = ${B}[bc${c} + wt + co / 4u];`);
      else {
        for (const pp of range(ku)) {
          body.push(`let b${c}_${pp} = ${B}[bc${c} + wt + co${pp ? ` + ${pp}u` : ""}];`);
        }
      }
    }
    body.push(...fma((r, pp) => (vecA ? `a${r}[${pp}]` : `a${r}_${pp}`), ku));
    return `${head}

@compute @workgroup_size(${wg})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let blk = (wid.y * groups.x + wid.x) * ${wg}u + lid;
  let rb = blk / u.cblocks;
  if (rb >= u.rblocks) { return; }
  let j0 = (blk % u.cblocks) * ${tn}u;
  let s = u.stride;
  // Find the block's stride class: classes are class-major, ceil(count / tm) blocks each.
  var cls = 0u;
  var first = 0u;
  var hq = 1u;
  var wq = 1u;
  var found = false;
  for (var c = 0u; c < s * s; c++) {
    let h1 = select(0u, (u.h - c / s + s - 1u) / s, u.h > c / s);
    let w1 = select(0u, (u.w - c % s + s - 1u) / s, u.w > c % s);
    let nb = (u.n * h1 * w1 + ${tm - 1}u) / ${tm}u;
    if (!found && rb < first + nb) {
      found = true;
      cls = c;
      hq = h1;
      wq = w1;
    }
    if (!found) { first += nb; }
  }
  let qh = cls / s;
  let qw = cls % s;
  let cnt = u.n * hq * wq;
  let i0 = (rb - first) * ${tm}u;
  ${bases}
${ind(setup, 2)}
${ind(pix, 2)}
${ind(acc, 2)}
  for (var kh = (qh + u.pad) % s; kh < u.k; kh += s) {
    let dh = (i32(qh + u.pad) - i32(kh)) / i32(s);
    for (var kw = (qw + u.pad) % s; kw < u.k; kw += s) {
      let dw = (i32(qw + u.pad) - i32(kw)) / i32(s);
      let wt = (kh * u.k + kw) * u.cin * ${u4(vecB, "u.cout")};
${ind(tap, 6)}
      for (var co = 0u; co < u.cout; co += ${ku}u) {
${ind(body, 8)}
      }
    }
  }
${ind(stores((r) => `i0 + ${r}u < cnt`), 2)}
}
`;
  }

  // backwardWeight: one block per workgroup; its wg invocations split the output pixels
  // (contiguous chunks) and sum their partial blocks in workgroup memory.
  const tc = t.tc, tt = tm / tc;
  if (!Number.isInteger(tt) || (vecA && tc % 4)) {
    throw new Error(`conv2d backwardWeight: tm ${tm} / tc ${tc} (vec4 A needs tc % 4 == 0)`);
  }
  const T = range(tt), V = range(vecA ? tc / 4 : tc);
  const aRow = u4(vecA, "u.cin");
  const taps: string[] = [];
  for (const j of T) {
    taps.push(
      `let tp${j} = min(tap0 + ${j}u, u.k * u.k - 1u);`,
      `let dh${j} = i32(tp${j} / u.k) - i32(u.pad);`,
      `let dw${j} = i32(tp${j} % u.k) - i32(u.pad);`,
    );
  }
  const body: string[] = [];
  for (const j of T) {
    body.push(
      `let py${j} = iy + dh${j};`,
      `let px${j} = ix + dw${j};`,
      `let ok${j} = u32(py${j}) < u.h && u32(px${j}) < u.w;`,
      `let a${j}b = aBase + ((nh + min(u32(py${j}), u.h - 1u)) * u.w + ` +
        `min(u32(px${j}), u.w - 1u)) * ${aRow} + ${u4(vecA, "ci0")};`,
      ...V.map((v) =>
        `let a${j}_${v} = select(${zero(vecA)}, ${A}[a${j}b${v ? ` + ${v}u` : ""}], ok${j});`
      ),
    );
  }
  const bRow = u4(vecB, "u.cout");
  body.push(...(vecB ? C4 : Cs).map((c) => `let b${c}_0 = ${B}[bc${c} + p * ${bRow}];`));
  body.push(
    ...fma((r, _) => {
      const j = Math.floor(r / tc), cc = r % tc;
      return vecA ? `a${j}_${cc >> 2}[${cc & 3}]` : `a${j}_${cc}`;
    }, 1),
  );
  const rp = Math.max(1, Math.min(tm, Math.floor(REDUCE_FLOATS / (wg * tn))));
  const reduce: string[] = [];
  for (let first = 0; first < tm; first += rp) {
    const rows = Math.min(rp, tm - first);
    for (const rr of range(rows)) {
      for (const c of Cs) {
        reduce.push(`part[(lid * ${rp}u + ${rr}u) * ${tn}u + ${c}u] = c${first + rr}_${c};`);
      }
    }
    reduce.push(
      `workgroupBarrier();`,
      `for (var o = lid; o < ${rows * tn}u; o += ${wg}u) {`,
      `  var sum = 0.0;`,
      `  for (var j = 0u; j < ${wg}u; j++) { sum += part[j * ${rp * tn}u + o]; }`,
      `  let row = ${first}u + o / ${tn}u;`,
      `  let col = j0 + o % ${tn}u;`,
      `  let tap = tap0 + row / ${tc}u;`,
      `  if (tap < u.k * u.k && col < u.cout) {`,
      `    ${C}[cBase + (tap * u.cin + ci0 + row % ${tc}u) * u.cout + col] = sum;`,
      `  }`,
      `}`,
      `workgroupBarrier();`,
    );
  }
  return `${head}
var<workgroup> part: array<f32, ${wg * rp * tn}>;

@compute @workgroup_size(${wg})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let blk = wid.y * groups.x + wid.x;
  let rb = blk / u.cblocks;
  let j0 = (blk % u.cblocks) * ${tn}u;
  let tap0 = (rb / (u.cin / ${tc}u)) * ${tt}u;
  let ci0 = (rb % (u.cin / ${tc}u)) * ${tc}u;
  ${bases}
${ind(setup, 2)}
${ind(taps, 2)}
${ind(acc, 2)}
  let pixels = u.n * u.oh * u.ow;
  let p0 = min(lid * u.chunk, pixels);
  let p1 = min(p0 + u.chunk, pixels);
  var pn = p0 / (u.oh * u.ow);
  var oy = (p0 / u.ow) % u.oh;
  var ox = p0 % u.ow;
  for (var p = p0; p < p1; p++) {
    let iy = i32(oy * u.stride);
    let ix = i32(ox * u.stride);
    let nh = pn * u.h;
${ind(body, 4)}
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
${ind(reduce, 2)}
}
`;
}

/** Forward: y = conv(x, w) per run; x may be shared by all runs (runStride 0). */
export interface Conv2dForwardSpec {
  runs: number;
  shape: Conv2dShape;
  /** Input, NHWC [N, H, W, Cin]. */
  x: TensorView;
  /** Weights [K*K*Cin, Cout]. */
  w: TensorView;
  /** Output, NHWC [N, OH, OW, Cout]; overwritten. */
  y: TensorView;
}

/** Backward to the input: dx = the transposed convolution of dy with w; dx is overwritten. */
export interface Conv2dBackwardInputSpec {
  runs: number;
  shape: Conv2dShape;
  /** [N, OH, OW, Cout]. */
  dy: TensorView;
  w: TensorView;
  /** [N, H, W, Cin]; overwritten. */
  dx: TensorView;
}

/** Backward to the weights: dw = im2col(x)ᵀ · dy; dw is overwritten, not accumulated. */
export interface Conv2dBackwardWeightSpec {
  runs: number;
  shape: Conv2dShape;
  /** [N, H, W, Cin]; may be shared by all runs (runStride 0). */
  x: TensorView;
  dy: TensorView;
  /** [K*K*Cin, Cout]; overwritten. */
  dw: TensorView;
}

/** Fewer blocks than this (8 SIMD batches of 8) and the forward/backwardInput block shrinks. */
const MIN_BLOCKS = 64;

const ok4 = (v: TensorView) =>
  v.offset % 4 === 0 && v.runStride % 4 === 0 && v.buffer.size % 16 === 0;

/** Largest of `candidates` dividing `n`, else undefined. */
const divisor = (n: number, candidates: number[]) => candidates.find((c) => n % c === 0);

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

/**
 * The tiling the builders use for `product` at `shape` with these views (A, B, C in the
 * order of {@link ConvTiling}), `override` applied; vec4 is kept only where aligned.
 */
export function chooseConvTiling(
  product: ConvProduct,
  shape: Conv2dShape,
  runs: number,
  views: [TensorView, TensorView, TensorView],
  override: Partial<ConvTiling> = {},
): ConvTiling {
  const { cin, cout, k } = shape;
  const { oh, ow } = convOutputShape(shape);
  const cols = product === "backwardInput" ? cin : cout;
  const t: ConvTiling = {
    tm: 16,
    tn: cols % 4 === 0 ? divisor(cols, [16, 12, 8]) ?? 4 : Math.min(cols, 8),
    wg: 64,
    tc: 1,
    vecA: true,
    vecB: true,
    vecC: true,
    ...override,
  };
  const [a, b, c] = views;
  if (product === "backwardWeight") {
    if (override.tc === undefined) {
      t.tc = cin % 4 === 0
        ? divisor(cin, [16, 12, 8, 4])!
        : divisor(cin, range(16).reverse().map((i) => i + 1))!;
    }
    if (override.tm === undefined) {
      t.tm = t.tc * Math.max(1, Math.min(k * k, Math.floor(16 / t.tc)));
    }
    t.vecA &&= cin % 4 === 0 && t.tc % 4 === 0 && ok4(a);
    t.vecB &&= cout % 4 === 0 && t.tn % 4 === 0 && ok4(b);
    t.vecC = false;
  } else {
    const rows = product === "forward" ? shape.n * oh * ow : shape.n * shape.h * shape.w;
    const blocks = () => ceilDiv(rows, t.tm) * ceilDiv(cols, t.tn) * runs;
    while (override.tm === undefined && t.tm > 4 && blocks() < MIN_BLOCKS) t.tm /= 2;
    const depthVec = product === "forward" ? cin % 4 === 0 : cout % 4 === 0;
    t.vecA &&= depthVec && ok4(a);
    t.vecB &&= cout % 4 === 0 && (product === "backwardInput" || t.tn % 4 === 0) && ok4(b);
    t.vecC &&= cols % 4 === 0 && t.tn % 4 === 0 && ok4(c);
  }
  return t;
}

function build(
  gpu: Gpu,
  product: ConvProduct,
  runs: number,
  shape: Conv2dShape,
  views: [TensorView, TensorView, TensorView],
  override?: Partial<ConvTiling>,
): Dispatch {
  const name = `conv2d ${product}`;
  assertCounts(name, { runs });
  const { oh, ow } = convOutputShape(shape);
  const { n, h, w, cin, cout, k } = shape;
  const [a, b, c] = views;
  if (a.buffer === c.buffer || b.buffer === c.buffer) {
    throw new Error(`${name}: the output buffer must differ from the input buffers`);
  }
  const t = chooseConvTiling(product, shape, runs, views, override);
  const xLen = n * h * w * cin, yLen = n * oh * ow * cout, wLen = k * k * cin * cout;
  const lengths = {
    forward: [xLen, wLen, yLen],
    backwardInput: [yLen, wLen, xLen],
    backwardWeight: [xLen, yLen, wLen],
  }[product];
  const cols = product === "backwardInput" ? cin : cout;
  const cblocks = ceilDiv(cols, t.tn);
  let rblocks: number, chunk = 0, workgroups: [number, number, number];
  if (product === "backwardWeight") {
    rblocks = ceilDiv(k * k, t.tm / t.tc) * (cin / t.tc);
    chunk = ceilDiv(n * oh * ow, t.wg);
    const blocks = rblocks * cblocks;
    const x = Math.min(blocks, 65535);
    if (blocks % x) throw new Error(`${name}: ${blocks} blocks do not fold into a grid`);
    workgroups = [x, blocks / x, runs];
  } else {
    rblocks = product === "forward" ? ceilDiv(n * oh * ow, t.tm) : inputRowBlocks(shape, t.tm);
    workgroups = foldedGrid(rblocks * cblocks, runs, t.wg);
  }
  const [an, bn, cn] = NAMES[product];
  return convInterface(product, t).dispatch(gpu, {
    code: conv2dWgsl(product, t),
    dims: {
      n,
      h,
      w,
      cin,
      cout,
      k,
      stride: shape.stride,
      pad: shape.pad,
      oh,
      ow,
      rows: product === "forward"
        ? n * oh * ow
        : product === "backwardInput"
        ? n * h * w
        : k * k * cin,
      rblocks,
      cblocks,
      chunk,
    },
    views: {
      [an]: { view: a, length: lengths[0] },
      [bn]: { view: b, length: lengths[1] },
      [cn]: { view: c, length: lengths[2] },
    },
    runs,
    workgroups,
  });
}

/** Forward = reference `conv2dForward` per run. `tiling` overrides (benchmarks, tests). */
export function conv2dForwardKernel(
  gpu: Gpu,
  spec: Conv2dForwardSpec,
  tiling?: Partial<ConvTiling>,
): Dispatch {
  return build(gpu, "forward", spec.runs, spec.shape, [spec.x, spec.w, spec.y], tiling);
}

/** dx = reference `conv2dBackwardInput` per run; dx is overwritten. */
export function conv2dBackwardInputKernel(
  gpu: Gpu,
  spec: Conv2dBackwardInputSpec,
  tiling?: Partial<ConvTiling>,
): Dispatch {
  return build(gpu, "backwardInput", spec.runs, spec.shape, [spec.dy, spec.w, spec.dx], tiling);
}

/** dW = reference `conv2dBackwardWeight` per run; dw is overwritten, not accumulated. */
export function conv2dBackwardWeightKernel(
  gpu: Gpu,
  spec: Conv2dBackwardWeightSpec,
  tiling?: Partial<ConvTiling>,
): Dispatch {
  return build(gpu, "backwardWeight", spec.runs, spec.shape, [spec.x, spec.dy, spec.dw], tiling);
}
