/**
 * The register block shared by the matmul and the three convolution kernels: each invocation
 * keeps a tm×tn block of C = A·B in registers `c{r}_{c}`, and each depth step loads tm values of
 * A and tn of B that feed tm·tn `r_fma` updates (on lavapipe loads cost most, so arithmetic per
 * load decides the speed). The products differ only in how an operand's elements are addressed
 * (a {@link BlockOperand}) and in what surrounds the block (bases, masks, the epilogue), which
 * stays in each kernel's module. Accumulation order is fixed here: depth step, then row, then
 * column, every update `c = r_fma(a, b, c)` in the kernel's precision `R`.
 *
 * @module
 */

/** 0, 1, …, n-1. */
export const range = (n: number): number[] => [...Array(n).keys()];

/** WGSL lines joined, each indented by `n` spaces. */
export function indent(lines: string[], n: number): string {
  return lines.map((l) => " ".repeat(n) + l).join("\n");
}

/**
 * How one operand (A feeding rows, B feeding columns) is laid out and loaded into registers
 * named `{reg}{i}` (one vec4 along the depth) or `{reg}{i}_{pp}` (depth step pp).
 */
export interface BlockOperand {
  /** Register prefix ("a" or "b"). */
  reg: string;
  /** The WGSL storage array read. */
  array: string;
  /** Loads are `vec4<f32>` (float32 only). */
  vec: boolean;
  /**
   * "depth": each line is contiguous along the depth, so a vec4 holds 4 depth steps of one line;
   * "block": contiguous across the lines, so a vec4 holds 4 lines at one depth step.
   */
  along: "depth" | "block";
  /** Lines loaded: tm for A, tn for B (the direct convolution: its window's columns). */
  lines: number;
  /** Array index of line i (vec along "block": vec4 group i) at depth step pp (vec along "depth": 0). */
  index: (i: number, pp: number) => string;
  /** Validity of line (or group) i: a masked-out load yields zero by select(), no branch. */
  mask?: (i: number) => string;
}

/** The operand's loads at depth step `pp` (a vec4 along the depth loads all steps at pp 0). */
export function operandLoads(op: BlockOperand, pp: number): string[] {
  const { reg, array, vec, along, lines, index, mask } = op;
  if (vec && along === "depth" && pp > 0) return [];
  const name = (i: number) => (vec && along === "depth" ? `${reg}${i}` : `${reg}${i}_${pp}`);
  const zero = vec ? "vec4<f32>(0.0)" : "R()";
  const load = (i: number) => {
    const v = `${array}[${index(i, pp)}]`;
    return `let ${name(i)} = ${mask ? `select(${zero}, ${v}, ${mask(i)})` : v};`;
  };
  return range(vec && along === "block" ? lines / 4 : lines).map(load);
}

/** The register holding line `i` of the operand at depth step `pp`. */
export function operandAt(op: BlockOperand, i: number, pp: number): string {
  if (!op.vec) return `${op.reg}${i}_${pp}`;
  return op.along === "depth" ? `${op.reg}${i}[${pp}]` : `${op.reg}${i >> 2}_${pp}[${i & 3}]`;
}

/** Where a line starts: `start` + i clamped below `limit` (loads never branch; stores check). */
export interface LineBases {
  /** Name prefix of the bases (`ar`, `bc`). */
  name: string;
  /** The operand's first element (its run's offset). */
  base: string;
  /** The block's first line (`i0`, `j0`). */
  start: string;
  /** Lines in the operand (`u.m`, `u.cout`). */
  limit: string;
  /** Along "depth" only: the elements between lines (the depth); vec4 divides it by 4. */
  depth?: string;
}

/** Loop-invariant bases of the operand's lines (of its vec4 groups along "block"). */
export function lineBases(op: BlockOperand, b: LineBases): string[] {
  const { name, base, start, limit, depth } = b;
  if (op.along === "depth") {
    if (depth === undefined) throw new Error(`${name}: lines along the depth need its length`);
    const len = op.vec ? `(${depth} / 4u)` : depth;
    return range(op.lines).map((i) =>
      `let ${name}${i} = ${base} + min(${start} + ${i}u, ${limit} - 1u) * ${len};`
    );
  }
  if (op.vec) {
    return range(op.lines / 4).map((i) =>
      `let ${name}${i} = ${base} + min(${start} / 4u + ${i}u, ${limit} / 4u - 1u);`
    );
  }
  return range(op.lines).map((i) =>
    `let ${name}${i} = ${base} + min(${start} + ${i}u, ${limit} - 1u);`
  );
}

/** A tm×tn block over `ku` depth steps per iteration, fed by A (rows) and B (columns). */
export interface RegisterBlock {
  tm: number;
  tn: number;
  /** Depth steps per loop iteration (4 when an operand is vec4 along the depth). */
  ku: number;
  a: BlockOperand;
  b: BlockOperand;
}

/** The accumulators, zero or (bias) `init(c)` per column, read once into `init{c}`. */
export function accumulators(blk: RegisterBlock, init?: (c: number) => string): string[] {
  const rows = range(blk.tm), cols = range(blk.tn);
  if (!init) return rows.flatMap((r) => cols.map((c) => `var c${r}_${c} = R();`));
  return [
    ...cols.map((c) => `let init${c} = ${init(c)};`),
    ...rows.flatMap((r) => cols.map((c) => `var c${r}_${c} = init${c};`)),
  ];
}

/** Loads of every depth step of an iteration, A then B per step. */
export function blockLoads(blk: RegisterBlock): string[] {
  return range(blk.ku).flatMap((pp) => [...operandLoads(blk.a, pp), ...operandLoads(blk.b, pp)]);
}

/** One loop iteration of the block: its loads ({@link blockLoads}), then its updates. */
export function blockStep(blk: RegisterBlock): string[] {
  return [...blockLoads(blk), ...blockFma(blk)];
}

/** The ku·tm·tn updates; row r reads A's line `aLine(r)` (the direct convolution's window). */
export function blockFma(blk: RegisterBlock, aLine = (r: number) => r): string[] {
  const { tm, tn, ku, a, b } = blk;
  return range(ku).flatMap((pp) =>
    range(tm).flatMap((r) =>
      range(tn).map((c) =>
        `c${r}_${c} = r_fma(${operandAt(a, aLine(r), pp)}, ${operandAt(b, c, pp)}, c${r}_${c});`
      )
    )
  );
}

/** Where {@link blockStores} writes: row r at element `row(r) * cols + j0 + c` of `array`. */
export interface BlockStore {
  /** The output array (its run's offset is `cBase`). */
  array: string;
  /** `vec4<f32>` stores along the columns (tn % 4 == 0). */
  vec: boolean;
  /** Columns of the output (`u.n`, `u.cout`). */
  cols: string;
  /** Row r of the block is inside the output. */
  valid: (r: number) => string;
  /** Row r's index in the output. */
  row: (r: number) => string;
}

/** Stores of the block; rows and columns past the edge are skipped. */
export function blockStores(blk: RegisterBlock, s: BlockStore): string[] {
  const { array, vec, cols, valid, row } = s;
  return range(blk.tm).flatMap((r) => [
    `if (${valid(r)}) {`,
    ...(vec
      ? range(blk.tn >> 2).map((g) => {
        const v = range(4).map((x) => `c${r}_${g * 4 + x}`).join(", ");
        return `  if (j0 / 4u + ${g}u < ${cols} / 4u) { ` +
          `${array}[cBase + ${row(r)} * (${cols} / 4u) + j0 / 4u + ${g}u] = vec4<f32>(${v}); }`;
      })
      : range(blk.tn).map((c) =>
        `  if (j0 + ${c}u < ${cols}) { ${array}[cBase + ${
          row(r)
        } * ${cols} + j0 + ${c}u] = c${r}_${c}; }`
      )),
    `}`,
  ]);
}
