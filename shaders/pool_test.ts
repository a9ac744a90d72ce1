import { type Gpu, readReals, runDispatches, uploadBuffer, uploadReals } from "./gpu.ts";
import {
  globalAvgPoolBackward,
  globalAvgPoolForward,
  maxPool2Backward,
  maxPool2Forward,
} from "../reference/pool.ts";
import type { Rng } from "../core/prng.ts";
import { assertClose, assertThrows, freshRng } from "../core/test_util.ts";
import {
  globalAvgPoolBackwardKernel,
  globalAvgPoolForwardKernel,
  maxPool2BackwardKernel,
  maxPool2ForwardKernel,
} from "./pool.ts";
import { randomReals, type Reals, ROUNDING } from "./precision.ts";
import { gpuTest } from "./test_gpu.ts";

type Shape = [n: number, h: number, w: number, c: number];

/** The precisions tested here. */
type Tested = "f32" | "df64";

/**
 * Relative tolerance of the average backward's one division by H*W: float32 is within 1e-6
 * (a few ulps of a division), df64's df_div within 7.6e-15 measured (df64.ts), so 1e-13.
 */
const DIV_RTOL: Record<Tested, number> = { f32: 1e-6, df64: 1e-13 };

/** Where one run-stacked tensor lives: buffer index, offset, padded run stride, length. */
interface Place {
  buffer: number;
  offset: number;
  runStride: number;
  length: number;
}

/**
 * Lays out run-stacked tensors of the given lengths, each at an odd offset with a padded run
 * stride (NaN in the gaps); `shared`: all in one buffer one after another, else one buffer each.
 */
function layout(
  lengths: Record<string, number>,
  runs: number,
  shared: boolean,
): { places: Record<string, Place>; sizes: number[] } {
  const places: Record<string, Place> = {}, sizes: number[] = [];
  let k = 0;
  for (const [name, length] of Object.entries(lengths)) {
    const buffer = shared ? 0 : k;
    const offset = (sizes[buffer] ?? 0) + 3 + 2 * (k % 3), runStride = length + 5 + 2 * (k % 2);
    places[name] = { buffer, offset, runStride, length };
    sizes[buffer] = offset + runs * runStride + 4;
    k++;
  }
  return { places, sizes };
}

/** Run r of a placed tensor inside host array `a`. */
function slice(a: Reals, p: Place, r: number): Reals {
  return a.subarray(p.offset + r * p.runStride, p.offset + r * p.runStride + p.length);
}

/**
 * All four pooling kernels in one submit on R runs of one NHWC shape, inputs and (NaN-poisoned)
 * outputs at offsets with padded run strides, in separate buffers or all in one. With `ties`,
 * x takes values in {-2, ..., 2}, so most max-pool windows tie and the GPU must pick the
 * reference's first maximum; in df64 each value also gets 0, 1 or 2 × 2^-30, below the ulp of
 * hi at ±1 and ±2, so there only the lo parts tell candidates apart (an r_gt that compared hi
 * alone would pick the wrong one). Checks every output run against the float64 reference and
 * that every element outside the outputs is exactly as uploaded (NaN gaps stay NaN).
 */
async function check(
  gpu: Gpu,
  rng: Rng,
  precision: Tested,
  runs: number,
  [n, h, w, c]: Shape,
  ties: boolean,
  shared: boolean,
): Promise<void> {
  const tag = `pool ${precision} R${runs} ${n}x${h}x${w}x${c}${ties ? " ties" : ""}${
    shared ? " shared" : ""
  }`;
  const input = n * h * w * c, pooled = n * Math.floor(h / 2) * Math.floor(w / 2) * c;
  const { places, sizes } = layout(
    {
      x: input,
      dyAvg: n * c,
      dyMax: pooled,
      yAvg: n * c,
      yMax: pooled,
      dxAvg: input,
      dxMax: input,
    },
    runs,
    shared,
  );
  const host = sizes.map((s) => new Float64Array(s).fill(NaN));
  const fill = (name: string, value: () => number) => {
    for (let r = 0; r < runs; r++) {
      slice(host[places[name].buffer], places[name], r).forEach((_, i, a) => (a[i] = value()));
    }
  };
  // Every value is exact in the precision: the reference sees the GPU's very inputs.
  const lo = precision === "f32" ? () => 0 : () => rng.int(3) * 2 ** -30;
  const uniform = () => randomReals(rng, precision, 1)[0];
  fill("x", ties ? () => rng.int(5) - 2 + lo() : uniform);
  fill("dyAvg", uniform);
  fill("dyMax", uniform);
  const buffers = host.map((a) => uploadReals(gpu, precision, a));
  const v = (name: string) => {
    const p = places[name];
    return { buffer: buffers[p.buffer], offset: p.offset, runStride: p.runStride };
  };
  const shape = { precision, runs, n, h, w, c };
  runDispatches(gpu, [
    globalAvgPoolForwardKernel(gpu, { ...shape, x: v("x"), y: v("yAvg") }),
    globalAvgPoolBackwardKernel(gpu, { ...shape, dy: v("dyAvg"), dx: v("dxAvg") }),
    maxPool2ForwardKernel(gpu, { ...shape, x: v("x"), y: v("yMax") }),
    maxPool2BackwardKernel(gpu, { ...shape, dy: v("dyMax"), x: v("x"), dx: v("dxMax") }),
  ]);
  const got = await Promise.all(buffers.map((b, i) => readReals(gpu, precision, b, sizes[i])));
  const at = (name: string, a: Reals[], r: number) =>
    slice(a[places[name].buffer], places[name], r);
  for (let r = 0; r < runs; r++) {
    const x = at("x", host, r), hw = h * w;
    // Blocked sum (blocks of 32): error below (hw/32 + 32 + 1) roundings of sum |x|; the
    // relative tolerance covers the division (as DIV_RTOL).
    let atol = 0;
    for (let b = 0; b < n; b++) {
      for (let j = 0; j < c; j++) {
        let abs = 0;
        for (let p = 0; p < hw; p++) abs += Math.abs(x[(b * hw + p) * c + j]);
        atol = Math.max(atol, ((Math.ceil(hw / 32) + 33) * ROUNDING[precision] * abs) / hw);
      }
    }
    assertClose(
      at("yAvg", got, r),
      globalAvgPoolForward(x, n, h, w, c),
      DIV_RTOL[precision],
      atol,
      `${tag} run ${r} avg y`,
    );
    assertClose(
      at("dxAvg", got, r),
      globalAvgPoolBackward(at("dyAvg", host, r), n, h, w, c),
      DIV_RTOL[precision],
      0,
      `${tag} run ${r} avg dx`,
    );
    // Max pooling selects and copies: exact.
    assertClose(at("yMax", got, r), maxPool2Forward(x, n, h, w, c), 0, 0, `${tag} run ${r} max y`);
    assertClose(
      at("dxMax", got, r),
      maxPool2Backward(at("dyMax", host, r), x, n, h, w, c),
      0,
      0,
      `${tag} run ${r} max dx`,
    );
  }
  const outputs = ["yAvg", "yMax", "dxAvg", "dxMax"].map((name) => places[name]);
  got.forEach((a, buffer) => {
    const mine = outputs.filter((p) => p.buffer === buffer);
    for (let i = 0; i < a.length; i++) {
      const inside = mine.some((p) => {
        const k = i - p.offset, r = Math.floor(k / p.runStride);
        return k >= 0 && r < runs && k - r * p.runStride < p.length;
      });
      if (!inside && !Object.is(a[i], host[buffer][i])) {
        throw new Error(`${tag}: buffer ${buffer} element ${i} changed to ${a[i]}`);
      }
    }
  });
}

const SHAPES: Shape[] = [[1, 7, 5, 3], [2, 9, 9, 17], [3, 2, 2, 1], [4, 32, 32, 16]];

for (const runs of [1, 3]) {
  gpuTest(`pool: avg/max forward/backward against the reference, R=${runs}`, async (gpu) => {
    const rng = freshRng(`pool R=${runs}`);
    for (const shape of SHAPES) {
      for (const ties of [false, true]) {
        for (const shared of [false, true]) {
          await check(gpu, rng, "f32", runs, shape, ties, shared);
        }
      }
    }
  });
}

gpuTest("pool in df64: avg/max forward/backward against the reference, R=2", async (gpu) => {
  const rng = freshRng("pool df64");
  // Small shapes (H*W = 81 spans three sum blocks); exact ties and lo-only differences.
  for (const shape of [[1, 7, 5, 3], [2, 9, 9, 17], [3, 2, 2, 1]] as Shape[]) {
    for (const ties of [false, true]) {
      for (const shared of [false, true]) await check(gpu, rng, "df64", 2, shape, ties, shared);
    }
  }
});

gpuTest("pool: shapes and views are validated", (gpu) => {
  const buf = uploadBuffer(gpu, new Float32Array(64));
  const v = { buffer: buf, offset: 0, runStride: 0 };
  const shape = { runs: 1, n: 1, h: 1, w: 4, c: 2 };
  assertThrows(() => maxPool2ForwardKernel(gpu, { ...shape, x: v, y: v }), "h must be");
  assertThrows(
    () => globalAvgPoolForwardKernel(gpu, { ...shape, c: 0, x: v, y: v }),
    "c must be",
  );
  // 1×8×4×2 = 64 elements fit; 3 runs at stride 64 do not.
  const big = { runs: 3, n: 1, h: 8, w: 4, c: 2 };
  assertThrows(
    () => globalAvgPoolBackwardKernel(gpu, { ...big, dy: v, dx: { ...v, runStride: 64 } }),
    "do not fit",
  );
});
