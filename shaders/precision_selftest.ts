/**
 * The startup self-test of a precision's arithmetic on the adapter: each `r_*` function of
 * `precision.ts` (add, sub, mul, div, sqrt, exp, log) applied elementwise by one kernel to
 * seeded random inputs and checked against float64 on the CPU. For `--precision f64` it is the
 * only evidence that the adapter's compiler and hardware do native double arithmetic (and
 * exp/log) right: an op that fails to compile or misses the tolerance stops the run with one
 * line. For df64 it checks the kernels' vocabulary on top of `df64_selftest.ts`'s primitives.
 *
 * @module
 */

import { assertCounts, foldedGrid, foldedMain, KernelInterface } from "./binding.ts";
import { DF64_RTOL, randomMagnitude } from "./df64_selftest.ts";
import {
  type Dispatch,
  type Gpu,
  readReals,
  realBuffer,
  runDispatches,
  uploadReals,
} from "./gpu.ts";
import { heldReals, type Precision } from "./precision.ts";
import { createRng } from "../core/prng.ts";

/** The functions checked, in order. */
export const REAL_OPS = ["add", "sub", "mul", "div", "sqrt", "exp", "log"] as const;

/** One of {@link REAL_OPS}. */
export type RealOp = typeof REAL_OPS[number];

const EXPRESSION: Record<RealOp, string> = {
  add: "r_add(x, y)",
  sub: "r_sub(x, y)",
  mul: "r_mul(x, y)",
  div: "r_div(x, y)",
  sqrt: "r_sqrt(x)",
  exp: "r_exp(x)",
  log: "r_log(x)",
};

const REFERENCE: Record<RealOp, (x: number, y: number) => number> = {
  add: (x, y) => x + y,
  sub: (x, y) => x - y,
  mul: (x, y) => x * y,
  div: (x, y) => x / y,
  sqrt: (x) => Math.sqrt(x),
  exp: (x) => Math.exp(x),
  log: (x) => Math.log(x),
};

/**
 * log2 ranges of |a| and |b| per op (results inside df64's range, where it is accurate to
 * 1e-13 relative), and whether a must be positive.
 */
const CASES: Record<RealOp, { a: [number, number]; b: [number, number]; positive?: boolean }> = {
  add: { a: [-30, 30], b: [-30, 30] },
  sub: { a: [-30, 30], b: [-30, 30] },
  mul: { a: [-40, 40], b: [-40, 40] },
  div: { a: [-40, 40], b: [-40, 40] },
  sqrt: { a: [-90, 120], b: [0, 1], positive: true },
  exp: { a: [-6, 6], b: [0, 1] },
  log: { a: [-60, 60], b: [0, 1], positive: true },
};

/** The ops of one argument (b is bound but not read). */
const UNARY: ReadonlySet<RealOp> = new Set(["sqrt", "exp", "log"]);

const WORKGROUP = 256;

function opInterface(precision: Precision): KernelInterface {
  return new KernelInterface("real op", {
    precision,
    dims: ["count"],
    slots: [{ name: "a" }, { name: "b" }, { name: "out", access: "read_write" }],
  });
}

/** WGSL of out[i] = op(a[i], b[i]) over `count` reals of `precision`. */
export function realOpWgsl(op: RealOp, precision: Precision): string {
  // Every op loads b (unary ones ignore it): the pipeline layout then binds all three slots.
  const body = `  let x = a[at_a(r, i)];
  let y = b[at_b(r, i)];
  out[at_out(r, i)] = ${EXPRESSION[op]};`;
  return `${opInterface(precision).wgsl}

${foldedMain(WORKGROUP, body)}`;
}

/** One dispatch of {@link realOpWgsl} over whole buffers of `count` reals. */
function realOpKernel(
  gpu: Gpu,
  op: RealOp,
  precision: Precision,
  count: number,
  buffers: { a: GPUBuffer; b: GPUBuffer; out: GPUBuffer },
): Dispatch {
  assertCounts(`real ${op}`, { count });
  const bound = (buffer: GPUBuffer) => ({
    view: { buffer, offset: 0, runStride: count },
    length: count,
  });
  return opInterface(precision).dispatch(gpu, {
    code: realOpWgsl(op, precision),
    dims: { count },
    views: { a: bound(buffers.a), b: bound(buffers.b), out: bound(buffers.out) },
    runs: 1,
    workgroups: foldedGrid(count, 1, WORKGROUP),
  });
}

/** The worst input of an op: its relative error, the inputs, the result and float64's. */
export interface RealWorst {
  error: number;
  x: number;
  y: number;
  got: number;
  want: number;
}

/** The verdict: ok with each op's worst error, or the first op that failed and how. */
export type RealSelfTestResult =
  | { ok: true; worst: Record<RealOp, number> }
  | { ok: false; op: RealOp; limit: number; worst?: RealWorst; compileError?: string };

/**
 * Runs every op of {@link REAL_OPS} in `precision` on `count` seeded random inputs and checks
 * it against float64 within `rtol` (default {@link DF64_RTOL}, 1e-13). An op the adapter cannot
 * compile fails with its compiler message. Stops at the first failure.
 */
export async function realSelfTest(
  gpu: Gpu,
  precision: Precision,
  opts: { count?: number; seed?: number; rtol?: number } = {},
): Promise<RealSelfTestResult> {
  const count = opts.count ?? 1024, limit = opts.rtol ?? DF64_RTOL;
  const rng = createRng(opts.seed ?? 0x7ea1);
  const worstOf = {} as Record<RealOp, number>;
  for (const op of REAL_OPS) {
    const c = CASES[op];
    const sign = (x: number) => (c.positive ? Math.abs(x) : x);
    const xs = Float64Array.from({ length: count }, () => sign(randomMagnitude(rng, ...c.a)));
    const ys = Float64Array.from({ length: count }, () => randomMagnitude(rng, ...c.b));
    const a = uploadReals(gpu, precision, xs), b = uploadReals(gpu, precision, ys);
    const out = realBuffer(gpu, precision, count);
    let got: ArrayLike<number>;
    try {
      // Compile errors arrive as validation errors, not as exceptions.
      const { value: dispatch, error } = await gpu.capture(() =>
        realOpKernel(gpu, op, precision, count, { a, b, out })
      );
      if (error) return { ok: false, op, limit, compileError: error };
      runDispatches(gpu, [dispatch]);
      got = await readReals(gpu, precision, out, count);
    } finally {
      for (const buffer of [a, b, out]) buffer.destroy();
    }
    // The reference sees the inputs the GPU holds (df64 and f64 to within 2^-48 or exactly;
    // f32 rounds them, and fails the tolerance through its arithmetic).
    const heldX = heldReals(precision, xs), heldY = heldReals(precision, ys);
    let worst: RealWorst = { error: -1, x: NaN, y: NaN, got: NaN, want: NaN };
    for (let i = 0; i < count; i++) {
      const want = REFERENCE[op](heldX[i], heldY[i]);
      const e = Math.abs(got[i] - want) / Math.abs(want);
      const error = Number.isNaN(e) ? Infinity : e;
      if (error > worst.error) worst = { error, x: heldX[i], y: heldY[i], got: got[i], want };
    }
    if (!(worst.error <= limit)) return { ok: false, op, limit, worst };
    worstOf[op] = worst.error;
  }
  return { ok: true, worst: worstOf };
}

/** The one line a failed self-test stops the trainer with (empty when it passed). */
export function realSelfTestMessage(
  adapter: string,
  precision: Precision,
  result: RealSelfTestResult,
): string {
  if (result.ok) return "";
  const head = `${precision} self-test failed on ${adapter}: ${result.op}`;
  if (result.compileError !== undefined) {
    return `${head} does not compile: ${result.compileError}`;
  }
  const w = result.worst!;
  const inputs = UNARY.has(result.op) ? `${w.x}` : `${w.x}, ${w.y}`;
  return `${head} relative error ${w.error} (limit ${result.limit}) at (${inputs}): got ${w.got}, ` +
    `expected ${w.want}`;
}
