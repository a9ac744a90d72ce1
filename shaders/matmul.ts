/**
 * Register-blocked matmul for all three products of an MLP layer (forward X·W (+b), backward
 * dZ·Wᵀ and Xᵀ·dZ), R runs per dispatch, every variant and precision (`precision.ts`: f32, df64,
 * f64) generated from one template over the register block of `register_block.ts`.
 *
 * Default choices (each the fastest variant measured on lavapipe; the measurements are in
 * docs/results/kernel-variants.md, "## matmul"); the tiling is a parameter, and `deno task tune`
 * replaces the default per shape where a verified variant is faster on the adapter at hand
 * (shaders/tilings.ts):
 * - a tm×tn block of C in registers per invocation, vec4 loads where an operand's contiguous
 *   dimension allows: loads cost ~80% of the time, so the kernel maximises FMAs per load;
 * - 16×12 for NN/NT, 16×16 for TN: bigger blocks spill, and TN (both operands across the
 *   block, one depth a step) has the fewest live loads;
 * - 8×4 workgroups: x spans the 8 SIMD lanes;
 * - no workgroup memory: its loads are per-lane loops too, and barriers made it 3–5x slower;
 * - small products (the head, n=10): below 64 blocks the block shrinks (tn 4, then tm 8) and
 *   the workgroup shrinks until there are 4 workgroups, so both cores get work;
 * - df64 and f64 have no vec4 slots and take the all-scalar 16×12 tiling ({@link defaultTiling}).
 *
 * Edges: out-of-range rows/columns are clamped for loads (no branch in the k loop) and skipped
 * for stores, so every size works (1, odd primes). vec4 is chosen per operand only when its
 * offset, run stride and contiguous dimension are multiples of 4 (and its buffer a multiple of
 * 16 bytes); otherwise that operand is loaded scalar by the same template.
 *
 * @module
 */

import { assertCounts, ceilDiv, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";
import {
  accumulators,
  type BlockOperand,
  blockStep,
  blockStores,
  indent,
  lineBases,
  type RegisterBlock,
} from "./register_block.ts";

/** Which product: C = op(A)·op(B) (+ bias row-broadcast). op(A) is m×k (A stored k×m when transA); op(B) is k×n (B stored n×k when transB). */
export interface MatmulVariant {
  transA: boolean;
  transB: boolean;
  bias: boolean;
}

/**
 * How the template blocks and loads (compile-time). `vecA`/`vecB` load that operand as vec4
 * along its contiguous dimension (k for A, or m when transA; n for B, or k when transB) and
 * `vecC` stores C as vec4; {@link chooseTiling} turns them off unless aligned.
 */
export interface MatmulTiling {
  /** Rows of C per invocation. */
  tm: number;
  /** Columns of C per invocation. */
  tn: number;
  /** Workgroup size along columns (x) and rows (y). */
  wgx: number;
  wgy: number;
  vecA: boolean;
  vecB: boolean;
  vecC: boolean;
}

/** The tiling before alignment checks and workgroup shrinking (see the design notes). */
export const DEFAULT_TILING: MatmulTiling = {
  tm: 16,
  tn: 12,
  wgx: 8,
  wgy: 4,
  vecA: true,
  vecB: true,
  vecC: true,
};

/** The all-scalar tiling, correct for every shape, offset and precision. */
export const SCALAR_TILING: MatmulTiling = {
  ...DEFAULT_TILING,
  vecA: false,
  vecB: false,
  vecC: false,
};

/**
 * Default tiling of a variant: in float32, TN (both operands vec4 across the block, 1 depth a
 * step) prefers 16×16; df64 and f64 have no vec4 slots, so they get {@link SCALAR_TILING}.
 */
export function defaultTiling(transA: boolean, precision: Precision = "f32"): MatmulTiling {
  if (precision !== "f32") return { ...SCALAR_TILING };
  return transA ? { ...DEFAULT_TILING, tn: 16 } : { ...DEFAULT_TILING };
}

/** Fewer invocations than this (8 SIMD batches of 8) and {@link chooseTiling} shrinks the block. */
const MIN_BLOCKS = 64;

const interfaces = new Map<string, KernelInterface>();

/**
 * The (cached) interface of a variant, tiling and precision: A, B and the bias are read-only,
 * so C must live in another buffer; A, B, C are `vec4<f32>` where the tiling loads or stores
 * them so (float32 only: the interface refuses vec4 slots in df64 and f64), R otherwise.
 */
function matmulInterface(
  bias: boolean,
  tiling: MatmulTiling,
  precision: Precision,
): KernelInterface {
  const { vecA, vecB, vecC } = tiling;
  const key = `${bias} ${vecA} ${vecB} ${vecC} ${precision}`;
  let i = interfaces.get(key);
  if (!i) {
    const elem = (v: boolean) => (v ? "vec4<f32>" as const : "real" as const);
    i = new KernelInterface("matmul", {
      precision,
      dims: ["m", "n", "k"],
      slots: [
        { name: "a", elem: elem(vecA) },
        { name: "b", elem: elem(vecB) },
        { name: "c", access: "read_write", elem: elem(vecC) },
        ...(bias ? [{ name: "bias" }] : []),
      ],
    });
    interfaces.set(key, i);
  }
  return i;
}

/**
 * One operand of the block: along the depth when its contiguous dimension is k (A, or B when
 * transB), across the block otherwise; `bases` names its clamped line starts.
 */
function matmulOperand(
  reg: "a" | "b",
  bases: string,
  alongDepth: boolean,
  vec: boolean,
  lines: number,
  limit: string,
): BlockOperand {
  const at = (pp: number) => (pp ? `(p + ${pp}u)` : "p");
  const index = alongDepth
    ? (i: number, pp: number) => `${bases}${i} + ${vec ? "p / 4u" : at(pp)}`
    : (i: number, pp: number) => `${bases}${i} + ${at(pp)} * ${vec ? `(${limit} / 4u)` : limit}`;
  return { reg, array: reg, vec, along: alongDepth ? "depth" : "block", lines, index };
}

/**
 * WGSL for one variant, tiling and precision. Every invocation computes a tm×tn block of C for
 * run `workgroup_id.z`. Offsets and run strides of vec4 operands arrive in vec4 units.
 */
export function matmulWgsl(
  variant: MatmulVariant,
  tiling: MatmulTiling = SCALAR_TILING,
  precision: Precision = "f32",
): string {
  const { transA, transB, bias } = variant;
  const { tm, tn, wgx, wgy, vecA, vecB, vecC } = tiling;
  if ((vecA && transA && tm % 4) || (vecB && !transB && tn % 4) || (vecC && tn % 4)) {
    throw new Error(`matmul tiling ${tm}x${tn}: vec4 along a block dimension needs it % 4 == 0`);
  }
  const a = matmulOperand("a", "ar", !transA, vecA, tm, "u.m");
  const b = matmulOperand("b", "bc", transB, vecB, tn, "u.n");
  // Depth steps per loop iteration: 4 when an operand is vec4 along k (then k % 4 == 0).
  const ku = (vecA && !transA) || (vecB && transB) ? 4 : 1;
  const blk: RegisterBlock = { tm, tn, ku, a, b };
  const setup = [
    ...lineBases(a, { name: "ar", base: "aBase", start: "i0", limit: "u.m", depth: "u.k" }),
    ...lineBases(b, { name: "bc", base: "bBase", start: "j0", limit: "u.n", depth: "u.k" }),
  ];
  const init = (c: number) => (bias ? `bias[at_bias(run, min(j0 + ${c}u, u.n - 1u))]` : "R()");
  const stores = blockStores(blk, {
    array: "c",
    vec: vecC,
    cols: "u.n",
    valid: (r) => `i0 + ${r}u < u.m`,
    row: (r) => `(i0 + ${r}u)`,
  });
  return `// matmul ${precision} transA=${transA} transB=${transB} bias=${bias} ${tm}x${tn} ` +
    `wg ${wgx}x${wgy} vec4 A=${vecA} B=${vecB} C=${vecC}
${matmulInterface(bias, tiling, precision).wgsl}

@compute @workgroup_size(${wgx}, ${wgy}, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let run = wid.z;
  let i0 = gid.y * ${tm}u;
  let j0 = gid.x * ${tn}u;
  let aBase = at_a(run, 0u);
  let bBase = at_b(run, 0u);
  let cBase = at_c(run, 0u);
${indent(setup, 2)}
${indent(accumulators(blk, init), 2)}
  for (var p = 0u; p < u.k; p += ${ku}u) {
${indent(blockStep(blk), 4)}
  }
${indent(stores, 2)}
}
`;
}

/** One product on R runs: C = op(A)·op(B) (+ bias), every operand a run-stacked view. */
export interface MatmulSpec {
  /** Arithmetic of the operands' elements (default f32). */
  precision?: Precision;
  runs: number;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  a: TensorView;
  b: TensorView;
  c: TensorView;
  bias?: TensorView;
}

/**
 * The tiling the builder uses for `spec`: {@link defaultTiling} with `override` applied, vec4
 * kept only for aligned float32 operands (df64 and f64 are always scalar), the block shrunk for
 * small products (unless the override sets it), and (unless the override fixes the workgroup)
 * the workgroup shrunk to the block grid and until a dispatch has at least 4 workgroups.
 */
export function chooseTiling(spec: MatmulSpec, override: Partial<MatmulTiling> = {}): MatmulTiling {
  const transA = spec.transA ?? false, transB = spec.transB ?? false;
  const precision = spec.precision ?? "f32";
  const t: MatmulTiling = { ...defaultTiling(transA, precision), ...override };
  const { m, n, k, runs } = spec;
  // Small products (the head, n=10): smaller blocks, so both cores get SIMD batches to run.
  const blocks = () => ceilDiv(m, t.tm) * ceilDiv(n, t.tn) * runs;
  if (override.tn === undefined && blocks() < MIN_BLOCKS) t.tn = Math.min(t.tn, 4);
  if (override.tm === undefined && blocks() < MIN_BLOCKS) t.tm = Math.min(t.tm, 8);
  const ok4 = (v: TensorView, dim: number) =>
    precision === "f32" && v.offset % 4 === 0 && v.runStride % 4 === 0 && dim % 4 === 0 &&
    v.buffer.size % 16 === 0;
  t.vecA &&= ok4(spec.a, transA ? m : k) && (!transA || t.tm % 4 === 0);
  t.vecB &&= ok4(spec.b, transB ? k : n) && (transB || t.tn % 4 === 0);
  t.vecC &&= ok4(spec.c, n) && t.tn % 4 === 0;
  if (override.wgx === undefined && override.wgy === undefined) {
    const rows = ceilDiv(m, t.tm), cols = ceilDiv(n, t.tn);
    const pow2 = (x: number) => 2 ** Math.ceil(Math.log2(x));
    t.wgx = Math.min(t.wgx, pow2(cols));
    t.wgy = Math.min(t.wgy, pow2(rows));
    const groups = () => ceilDiv(cols, t.wgx) * ceilDiv(rows, t.wgy) * runs;
    while (groups() < 4 && t.wgx * t.wgy > 8) {
      if (t.wgy >= t.wgx) t.wgy /= 2;
      else t.wgx /= 2;
    }
  }
  return t;
}

/**
 * Builds the dispatch of one product: pipeline from the cache, uniform buffer and bind group
 * made once. `tiling` overrides the default tiling (benchmarks and tests).
 */
export function matmulKernel(
  gpu: Gpu,
  spec: MatmulSpec,
  tiling?: Partial<MatmulTiling>,
): Dispatch {
  const { precision = "f32", runs, m, n, k } = spec;
  assertCounts("matmul", { runs, m, n, k });
  const reads = [spec.a.buffer, spec.b.buffer, spec.bias?.buffer];
  if (reads.includes(spec.c.buffer)) {
    throw new Error("matmul: the output buffer must differ from the input buffers");
  }
  const variant: MatmulVariant = {
    transA: spec.transA ?? false,
    transB: spec.transB ?? false,
    bias: spec.bias !== undefined,
  };
  const t = chooseTiling(spec, tiling);
  return matmulInterface(variant.bias, t, precision).dispatch(gpu, {
    code: matmulWgsl(variant, t, precision),
    dims: { m, n, k },
    views: {
      a: { view: spec.a, length: m * k },
      b: { view: spec.b, length: k * n },
      c: { view: spec.c, length: m * n },
      ...(spec.bias ? { bias: { view: spec.bias, length: n } } : {}),
    },
    runs,
    workgroups: [ceilDiv(ceilDiv(n, t.tn), t.wgx), ceilDiv(ceilDiv(m, t.tm), t.wgy), runs],
  });
}

/** Floating-point operations of `runs` products of m×k by k×n: 2·m·n·k·runs. */
export function matmulFlops(m: number, n: number, k: number, runs = 1): number {
  return 2 * m * n * k * runs;
}
