/**
 * One double-float primitive of `df64.ts` applied elementwise, out[i] = op(a[i], b[i]): what the
 * primitive tests, the adapter self-test and the catalog run. Kept apart from the library so
 * the library imports nothing and every kernel module can paste it.
 *
 * @module
 */

import { assertCounts, foldedGrid, foldedMain, KernelInterface } from "./binding.ts";
import { DF64_ONE, DF64_ONE_FIELD, type Df64Options, df64Wgsl } from "./df64.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";

/** One primitive applied elementwise by {@link df64OpKernel}. */
export type Df64Op =
  | "two_sum"
  | "quick_two_sum"
  | "two_prod"
  | "add"
  | "sub"
  | "mul"
  | "mul_f"
  | "div"
  | "sqrt"
  | "exp"
  | "log";

/** Every {@link Df64Op}. */
export const DF64_OPS: readonly Df64Op[] = [
  "two_sum",
  "quick_two_sum",
  "two_prod",
  "add",
  "sub",
  "mul",
  "mul_f",
  "div",
  "sqrt",
  "exp",
  "log",
];

/** The WGSL expression of each op on pairs `x`, `y` (the float32 ops use their hi parts). */
const OP_EXPR: Record<Df64Op, string> = {
  two_sum: "two_sum(x.x, y.x)",
  quick_two_sum: "quick_two_sum(x.x, y.x)",
  two_prod: "two_prod(x.x, y.x)",
  add: "df_add(x, y)",
  sub: "df_sub(x, y)",
  mul: "df_mul(x, y)",
  mul_f: "df_mul_f(x, y.x)",
  div: "df_div(x, y)",
  sqrt: "df_sqrt(x)",
  exp: "df_exp(x)",
  log: "df_log(x)",
};

const WORKGROUP = 256;

const OP_INTERFACE = new KernelInterface("df64 op", {
  dims: ["count"],
  floats: [DF64_ONE_FIELD],
  slots: [{ name: "a" }, { name: "b" }, { name: "out", access: "read_write" }],
});

/** WGSL of out[i] = op(a[i], b[i]) over `count` interleaved (hi, lo) pairs per run. */
export function df64OpWgsl(op: Df64Op, options: Df64Options = {}): string {
  return /* wgsl */ `${OP_INTERFACE.wgsl}
${df64Wgsl(options)}
${
    foldedMain(
      WORKGROUP,
      `  df_init(u.${DF64_ONE_FIELD});
  let x = vec2<f32>(a[at_a(r, 2u * i)], a[at_a(r, 2u * i + 1u)]);
  let y = vec2<f32>(b[at_b(r, 2u * i)], b[at_b(r, 2u * i + 1u)]);
  let z = ${OP_EXPR[op]};
  out[at_out(r, 2u * i)] = z.x;
  out[at_out(r, 2u * i + 1u)] = z.y;`,
    )
  }`;
}

/** out = op(a, b) over `count` (hi, lo) pairs per run; views count float32 elements. */
export interface Df64OpSpec {
  op: Df64Op;
  runs: number;
  /** Pairs per run (each view spans 2 * count float32). */
  count: number;
  a: TensorView;
  /** Ignored by sqrt and exp, but bound all the same. */
  b: TensorView;
  out: TensorView;
  options?: Df64Options;
}

/** One dispatch of {@link df64OpWgsl}. */
export function df64OpKernel(gpu: Gpu, spec: Df64OpSpec): Dispatch {
  const { runs, count } = spec;
  assertCounts(`df64 ${spec.op}`, { runs, count });
  const bound = (view: TensorView) => ({ view, length: 2 * count });
  return OP_INTERFACE.dispatch(gpu, {
    code: df64OpWgsl(spec.op, spec.options),
    dims: { count },
    floats: DF64_ONE,
    views: { a: bound(spec.a), b: bound(spec.b), out: bound(spec.out) },
    runs,
    workgroups: foldedGrid(count, runs, WORKGROUP),
  });
}
