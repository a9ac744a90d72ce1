/**
 * Register-blocked matmul for all three products of an MLP layer (forward X·W (+b), backward
 * dZ·Wᵀ and Xᵀ·dZ), R runs per dispatch, every variant and precision (`precision.ts`: f32, df64,
 * f64) generated from one WGSL template that accumulates with `r_fma`.
 *
 * Design, from measurements on lavapipe (llvmpipe, LLVM 15, Mesa 22.3, 2 cores, AVX2 = 8
 * lanes). The host's speed drifts by up to 2x within seconds, so variants were timed
 * interleaved and compared as ratios to a baseline timed in the same round; GFLOP/s are from
 * the machine's fast phases (`bench/matmul.ts`, N dispatches per submit, median).
 * - Cost model: llvmpipe runs 8 invocations in SIMD lanes, but every storage-buffer load in a
 *   loop is a per-lane scalar loop with a bounds check (its "load once and broadcast" path for
 *   uniform addresses is off inside control flow: uniform and divergent addresses cost the
 *   same in the k loop). Loads are ~80% of the time: replacing them by arithmetic lifted 512³
 *   from ~8 to ~45 GFLOP/s. So each invocation keeps a tm×tn block of C in registers (tm+tn
 *   loaded values feed tm·tn FMAs per depth step) and loads vec4 wherever the operand's
 *   contiguous dimension allows (one lane loop then serves 4 values).
 * - Block sizes, ratio to 16×8 (8×8 workgroups; 512³ and 128×784×256):
 *   NN: 16×12 1.03–1.07, 16×16 0.81–0.90, 12×16 0.80–0.99, 8×16 0.92, 8×8 0.85–0.89,
 *   24×8 0.81, 12×12 0.74–0.92, 32×32 0.75, 32×8 0.29–0.52, 4×4 vec ~0.55.
 *   NT: 16×12 1.03–1.07, 16×16 0.79–0.89, 8×16 0.98. TN: 16×16 1.13–1.20, 16×12 1.01–1.02.
 *   Bigger blocks lose to register spills (the tm·tn accumulators times 8 lanes). NN/NT load
 *   A (and B for NT) as vec4 along k, so 4 depths of loads are live at once; TN loads both
 *   operands across the block (one depth a step) and affords 16×16. Hence 16×12 for NN/NT and
 *   16×16 for TN.
 * - Workgroup, ratio to 8×8 at the trainer's shapes: 8×4 1.01–1.07, 8×2 0.98–1.08, 16×4
 *   0.79–1.02, 4×8 0.65–0.75 (x must span the 8 SIMD lanes). Hence 8×4.
 * - Final kernel (16×12 / 16×16, 8×4 workgroups), `bench/matmul.ts` medians of two runs in a
 *   fast phase (GFLOP/s): NN 128×784×256 19.1–19.4, NN 128×256×784 18.7–20.0, NN 128×256×256
 *   13.5–16.8 (R=3: 18.7–19.6), NN 512³ 18.8–19.4, NT 128×784×256 18.4–19.8, TN 784×256×128
 *   18.1–18.3; ceiling (1024×1024×512) 19.9–20.3; slow phases give 10–13. Same-round ratios to
 *   the final kernel: all-scalar fallback 0.68 (NN), 0.72 (NT), 0.90 (TN); naive one output
 *   per invocation 0.09–0.11 (~1 GFLOP/s); 4×4 vec4 0.56–0.61; scalar A + vec4 B for NN
 *   0.72; fma() the same as a*b+c.
 * - No workgroup memory: its loads are per-lane loops too, and barriers turn the shader into
 *   coroutines (a colleague measured shared-memory tiling 3–5x slower than register blocks).
 * - Edges: out-of-range rows/columns are clamped for loads (no branch in the k loop) and
 *   skipped for stores, so every size works (1, odd primes). vec4 is chosen per operand only
 *   when its offset, run stride and contiguous dimension are multiples of 4 (and its buffer a
 *   multiple of 16 bytes); otherwise that operand is loaded scalar by the same template.
 * - Small products (the head, n=10): with fewer than 64 blocks the block shrinks (tn 4, then
 *   tm 8) and the workgroup shrinks to the block grid and until there are 4 workgroups
 *   (lavapipe runs a workgroup on one thread): 128×10×256 0.63 -> 0.25–0.37 ms, 512×10×256
 *   1.3 -> 0.73 ms, TN 256×10×128 0.6 -> 0.38 ms.
 * - Precision: float32 computes the same a·b + c as before (`r_fma` inlines; interleaved with
 *   the previous kernel on the NN, NT, TN and head shapes above, best-of-5 times equal). df64
 *   and f64 have no vec4 slots, so they get the all-scalar 16×12 tiling ({@link defaultTiling}).
 *   df64 NN 256³ against f32 in the same round: 7–20x slower, ~10x in the fastest rounds
 *   (16.4 ms, 2.0 GFLOP/s, against 1.7 ms); df64 blocks 8×8 and 16×16 were no faster, 8×4 and
 *   4×4 slower (noisy, one round each).
 *
 * @module
 */

import { assertCounts, ceilDiv, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";

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

const range = (n: number): number[] => [...Array(n).keys()];

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
  // Depth steps per loop iteration: 4 when an operand is vec4 along k (then k % 4 == 0).
  const ku = (vecA && !transA) || (vecB && transB) ? 4 : 1;
  const R = range(tm), C = range(tn), PP = range(ku), R4 = range(tm >> 2), C4 = range(tn >> 2);

  // Per-invocation bases: clamped row (A) and column (B) starts; ar*/bc* are loop invariant.
  const setup: string[] = [];
  if (!transA) {
    const rowLen = vecA ? "(u.k / 4u)" : "u.k";
    for (const r of R) setup.push(`let ar${r} = aBase + min(i0 + ${r}u, u.m - 1u) * ${rowLen};`);
  } else if (vecA) {
    for (const r of R4) setup.push(`let ar${r} = aBase + min(i0 / 4u + ${r}u, u.m / 4u - 1u);`);
  } else {
    for (const r of R) setup.push(`let ar${r} = aBase + min(i0 + ${r}u, u.m - 1u);`);
  }
  if (transB) {
    const rowLen = vecB ? "(u.k / 4u)" : "u.k";
    for (const c of C) setup.push(`let bc${c} = bBase + min(j0 + ${c}u, u.n - 1u) * ${rowLen};`);
  } else if (vecB) {
    for (const c of C4) setup.push(`let bc${c} = bBase + min(j0 / 4u + ${c}u, u.n / 4u - 1u);`);
  } else {
    for (const c of C) setup.push(`let bc${c} = bBase + min(j0 + ${c}u, u.n - 1u);`);
  }

  // Loop body: load op(A)[i0.., p..p+ku) and op(B)[p..p+ku, j0..), then ku·tm·tn updates.
  const body: string[] = [];
  const at = (pp: number) => (pp ? `(p + ${pp}u)` : "p");
  for (const pp of PP) {
    if (!transA) {
      // Contiguous along k: one vec4 covers all ku depths.
      if (vecA) body.push(...(pp ? [] : R.map((r) => `let a${r} = a[ar${r} + p / 4u];`)));
      else body.push(...R.map((r) => `let a${r}_${pp} = a[ar${r} + ${at(pp)}];`));
    } else {
      const row = `${at(pp)} * ${vecA ? "(u.m / 4u)" : "u.m"}`;
      body.push(...(vecA ? R4 : R).map((r) => `let a${r}_${pp} = a[ar${r} + ${row}];`));
    }
    if (transB) {
      if (vecB) body.push(...(pp ? [] : C.map((c) => `let b${c} = b[bc${c} + p / 4u];`)));
      else body.push(...C.map((c) => `let b${c}_${pp} = b[bc${c} + ${at(pp)}];`));
    } else {
      const row = `${at(pp)} * ${vecB ? "(u.n / 4u)" : "u.n"}`;
      body.push(...(vecB ? C4 : C).map((c) => `let b${c}_${pp} = b[bc${c} + ${row}];`));
    }
  }
  const aAt = (r: number, pp: number): string =>
    !vecA ? `a${r}_${pp}` : transA ? `a${r >> 2}_${pp}[${r & 3}]` : `a${r}[${pp}]`;
  const bAt = (c: number, pp: number): string =>
    !vecB ? `b${c}_${pp}` : transB ? `b${c}[${pp}]` : `b${c >> 2}_${pp}[${c & 3}]`;
  for (const pp of PP) {
    for (const r of R) {
      for (const c of C) body.push(`c${r}_${c} = r_fma(${aAt(r, pp)}, ${bAt(c, pp)}, c${r}_${c});`);
    }
  }

  // Stores: rows and columns past the edge are skipped.
  const stores: string[] = [];
  for (const r of R) {
    stores.push(`if (i0 + ${r}u < u.m) {`);
    if (vecC) {
      for (const c4 of C4) {
        const v = range(4).map((x) => `c${r}_${c4 * 4 + x}`).join(", ");
        stores.push(
          `  if (j0 / 4u + ${c4}u < u.n / 4u) { ` +
            `c[cBase + (i0 + ${r}u) * (u.n / 4u) + j0 / 4u + ${c4}u] = vec4<f32>(${v}); }`,
        );
      }
    } else {
      for (const c of C) {
        stores.push(
          `  if (j0 + ${c}u < u.n) { c[cBase + (i0 + ${r}u) * u.n + j0 + ${c}u] = c${r}_${c}; }`,
        );
      }
    }
    stores.push(`}`);
  }

  const init = (c: number) => (bias ? `bias[at_bias(run, min(j0 + ${c}u, u.n - 1u))]` : "R()");
  const ind = (lines: string[], n: number) => lines.map((l) => " ".repeat(n) + l).join("\n");
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
${ind(setup, 2)}
${ind(C.map((c) => `let init${c} = ${init(c)};`), 2)}
${ind(R.flatMap((r) => C.map((c) => `var c${r}_${c} = init${c};`)), 2)}
  for (var p = 0u; p < u.k; p += ${ku}u) {
${ind(body, 4)}
  }
${ind(stores, 2)}
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
