/**
 * df64 benchmark: the cost of double-float arithmetic against float32 on the adapter, for the
 * slowdown factor in `shaders/df64.ts`'s header. Two shapes:
 * - "alu": each invocation runs 16 independent chains of `iters` multiply-adds x = x·m + c in
 *   registers (df64: df_add(df_mul(x, m), c)), so the arithmetic alone is timed (fewer chains
 *   leave float32 bound by llvmpipe's loop overhead: 0.68 ns a step with 4, 0.30 with 8, 0.20
 *   with 16, while df64 stays near 1.9 ns);
 * - "stream": one multiply-add per element loaded and stored (float32: 3 loads + 1 store of 4
 *   bytes; df64: of 8 bytes), the shape of the elementwise kernels (SGD, BatchNorm apply).
 * Variants: float32, df64 (the default XOR barrier), df64 with the product-by-one barrier and
 * with no barrier. The last two are wrong on lavapipe; "none" is no floor of the cost either,
 * since the compiler then deletes most of the error terms.
 * `XDG_RUNTIME_DIR=/tmp deno run --allow-read --allow-env bench/df64.ts` prints a table on
 * stderr and JSON on stdout.
 *
 * @module
 */

import { KernelInterface } from "../shaders/binding.ts";
import { DF64_ONE, DF64_ONE_FIELD, type Df64Barrier, df64Wgsl } from "../shaders/df64.ts";
import { acquireGpu, type Gpu, gpuName, uploadBuffer } from "../shaders/gpu.ts";
import { createRng } from "../core/prng.ts";
import { timeDispatch } from "./timing.ts";

/** float32, or df64 with a barrier. */
export type Df64BenchVariant = "f32" | Df64Barrier;

const WG = 256;
const BENCH = new KernelInterface("df64 bench", {
  dims: ["count", "iters"],
  floats: [DF64_ONE_FIELD],
  slots: [{ name: "m" }, { name: "c" }, { name: "acc", access: "read_write" }],
});

/**
 * WGSL of the benchmark: per element, `chains` independent accumulators (acc, acc + 1, ...)
 * each step `iters` multiply-adds, then their sum is stored.
 */
export function df64BenchWgsl(variant: Df64BenchVariant, chains: number): string {
  const df = variant !== "f32";
  const load = (s: string) => (df ? `vec2<f32>(${s}[2u * i], ${s}[2u * i + 1u])` : `${s}[i]`);
  const ids = Array.from({ length: chains }, (_, j) => j);
  const init = ids.map((j) =>
    df ? `var x${j} = df_add(x, vec2<f32>(${j}.0, 0.0));` : `var x${j} = x + ${j}.0;`
  );
  const step = ids.map((
    j,
  ) => (df ? `x${j} = df_add(df_mul(x${j}, m1), c1);` : `x${j} = x${j} * m1 + c1;`));
  const sum = ids.slice(1).map((j) => (df ? `y = df_add(y, x${j});` : `y = y + x${j};`));
  const store = df ? "acc[2u * i] = y.x;\n  acc[2u * i + 1u] = y.y;" : "acc[i] = y;";
  return /* wgsl */ `${BENCH.wgsl}
${df ? df64Wgsl({ barrier: variant }) : ""}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${df ? `df_init(u.${DF64_ONE_FIELD});` : ""}
  let i = gid.x;
  if (i >= u.count) { return; }
  let m1 = ${load("m")};
  let c1 = ${load("c")};
  let x = ${load("acc")};
  ${init.join("\n  ")}
  for (var k = 0u; k < u.iters; k++) {
    ${step.join("\n    ")}
  }
  var y = x0;
  ${sum.join("\n  ")}
  ${store}
}
`;
}

/** One timed configuration: nanoseconds per multiply-add (per element and iteration). */
export interface Df64BenchResult {
  variant: Df64BenchVariant;
  shape: "alu" | "stream";
  nsPerOp: number;
}

/** The two shapes timed: elements, multiply-adds per chain, chains per element. */
export const DF64_BENCH_SHAPES = {
  alu: { count: 16384, iters: 16, chains: 16 },
  stream: { count: 1 << 20, iters: 1, chains: 1 },
} as const;

/** Nanoseconds per multiply-add of `variant` at `shape` (median of `reps`). */
export async function benchDf64(
  gpu: Gpu,
  variant: Df64BenchVariant,
  shape: { count: number; iters: number; chains: number },
  reps = 5,
): Promise<number> {
  const { count, iters, chains } = shape;
  const words = variant === "f32" ? count : 2 * count;
  const rng = createRng(count + iters);
  // m in (0.5, 1) and c small: acc stays bounded whatever the iteration count.
  const fill = (lo: number, hi: number) =>
    Float32Array.from(
      { length: words },
      (_, j) => (j % 2 && variant !== "f32" ? 0 : rng.uniform(lo, hi)),
    );
  const m = uploadBuffer(gpu, fill(0.5, 1)), c = uploadBuffer(gpu, fill(0, 1e-3));
  const acc = uploadBuffer(gpu, fill(-1, 1));
  try {
    const view = (buffer: GPUBuffer) => ({
      view: { buffer, offset: 0, runStride: 0 },
      length: words,
    });
    const d = BENCH.dispatch(gpu, {
      code: df64BenchWgsl(variant, chains),
      dims: { count, iters },
      floats: DF64_ONE,
      views: { m: view(m), c: view(c), acc: view(acc) },
      runs: 1,
      workgroups: [Math.ceil(count / WG), 1, 1],
    });
    return (await timeDispatch(gpu, d, reps)) * 1e6 / (count * iters * chains);
  } finally {
    m.destroy();
    c.destroy();
    acc.destroy();
  }
}

if (import.meta.main) {
  const gpu = await acquireGpu();
  console.error(`adapter: ${gpuName(gpu)}`);
  const results: Df64BenchResult[] = [];
  for (const [shape, dims] of Object.entries(DF64_BENCH_SHAPES)) {
    // Interleaved rounds: the host's speed drifts, ratios within a round are what count.
    for (let round = 0; round < 3; round++) {
      const row: Record<string, number> = {};
      for (const variant of ["f32", "xor", "mul", "none"] as Df64BenchVariant[]) {
        const nsPerOp = await benchDf64(gpu, variant, dims);
        row[variant] = nsPerOp;
        results.push({ variant, shape: shape as "alu" | "stream", nsPerOp });
      }
      console.error(
        `${shape} round ${round}: ` +
          Object.entries(row).map(([v, ns]) => `${v} ${ns.toFixed(3)} ns`).join(", ") +
          `; df64/f32 ${(row.xor / row.f32).toFixed(1)}x`,
      );
    }
  }
  console.log(JSON.stringify({ adapter: gpuName(gpu), results }, null, 2));
}
