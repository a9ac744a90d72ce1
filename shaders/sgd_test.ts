import {
  type Gpu,
  packRunScalars,
  poison,
  readReals,
  realBuffer,
  runDispatches,
  runScalarsBytes,
  type RunScalarValues,
  storageBuffer,
  uploadReals,
  view,
} from "./gpu.ts";
import { gpuTest, stackedReals } from "./test_gpu.ts";
import { encodeReals, type Precision, randomReals, type Reals } from "./precision.ts";
import { dot, normalizedDistance, perturbSign, sgdStep } from "../reference/ops.ts";
import type { Rng } from "../core/prng.ts";
import { assertClose, freshRng } from "../core/test_util.ts";
import { OPTIMIZER_TERMS, type OptimizerTerm, sgdKernel } from "./sgd.ts";
import { CHUNK } from "./sums.ts";
import { angleFromSums } from "../core/angles.ts";

/** The fields the optimizer does not read: NaN, so reading one would show. */
const UNREAD = { eps: NaN, rescale: NaN, epsNext: NaN };

/** Random RunScalars of one step, exact in `precision`, the same for every run. */
function randomScalars(rng: Rng, precision: Precision): Omit<RunScalarValues, "perturb"> {
  const real = (lo: number, hi: number) => randomReals(rng, precision, 1, lo, hi)[0];
  return {
    ...UNREAD,
    lrS: real(0.01, 0.5),
    wdS: real(0, 0.05),
    shrinkS: real(0, 0.02),
    lrO: real(0.01, 0.5),
    wdO: real(0, 0.05),
    shrinkO: real(0, 0.02),
    momentum: real(0.5, 0.95),
    seed: rng.nextU32(),
    step: rng.int(1 << 20),
  };
}

/**
 * One case: the S tensors, the O elements after them, each run's perturbation amplitude, and
 * whether the runs' norm ratios to A are given as predictions (else the angle scales by each
 * run's own norm).
 */
interface Case {
  segments: number[];
  oSize: number;
  perturb: number[];
  predicted?: boolean;
}

/** Tolerances against the float64 reference: the update, the sums, the angles' |â - b̂|². */
const TOLERANCE = {
  // f32: a few roundings per step over 3 steps, |p|, |buf| <= ~5; sums ~40 additions deep.
  f32: { update: 2e-6, sum: 5e-7, distance: (_d: number) => [2e-3, 1e-13] },
  // df64: ~12 df64 operations per element (~1e-14 each); distances as the unit vectors allow.
  df64: {
    update: 1e-13,
    sum: 1e-12,
    distance: (d: number) => [1e-12, 2e-13 * Math.sqrt(d) + 1e-26],
  },
} as const;

/**
 * Three optimizer steps of `c` on the GPU (the last one with the monitor's sums) against the
 * float64 `sgdStep` and perturbation. Run 1 is 3 × run 0 with 1e-4 noise and run 2 exactly
 * 4 × run 0 (inputs and gradients), all runs sharing the step's scalars, so the angles to A are
 * ~1e-4 and 0; the sums are checked against float64 sums of the GPU's own weights.
 */
async function checkCase(gpu: Gpu, rng: Rng, precision: "f32" | "df64", c: Case): Promise<void> {
  const runs = c.perturb.length, S = c.segments.reduce((a, b) => a + b, 0), L = c.segments.length;
  const size = S + c.oSize, off = 2, stride = size + 3; // NaN gaps catch stray writes
  const tol = TOLERANCE[precision];
  const like = (a: Float64Array) => {
    for (let r = 1; r < runs; r++) {
      for (let i = 0; i < size; i++) {
        const x = a[off + i], k = off + r * stride + i;
        a[k] = r === 2 ? 4 * x : 3 * x * (1 + 1e-4 * rng.uniform(-1, 1));
      }
    }
    return Float64Array.from(a, (x) => precision === "f32" ? Math.fround(x) : x);
  };
  const stacked = () => like(stackedReals(rng, precision, runs, size, stride, off));
  const p = stacked(), buf = stacked();
  const [P, B, G] = [p, buf, p].map((a) => uploadReals(gpu, precision, a));
  const scalars = storageBuffer(gpu, runs, "scalars", runScalarsBytes(precision));
  const sNorms = realBuffer(gpu, precision, runs * L), M = OPTIMIZER_TERMS.length + L + 1;
  const record = realBuffer(gpu, precision, runs * M);
  poison(gpu, record);
  const spec = {
    precision,
    runs,
    size,
    segments: c.segments,
    params: view(P, stride, off),
    grads: view(G, stride, off),
    bufs: view(B, stride, off),
    scalars,
    sNorms: view(sNorms, L),
  };
  const norms = sgdKernel(gpu, spec);
  const monitor = sgdKernel(gpu, {
    ...spec,
    monitor: { totals: view(record, M), layerNorm2Before: view(record, M, OPTIMIZER_TERMS.length) },
  });
  const slice = <T extends Reals>(a: T, r: number) =>
    a.subarray(off + r * stride, off + r * stride + size) as T;
  const refP = Array.from({ length: runs }, (_, r) => Float64Array.from(slice(p, r)));
  const refB = Array.from({ length: runs }, (_, r) => Float64Array.from(slice(buf, r)));
  let before: Reals = p, grads: Float64Array = p;
  for (let step = 0; step < 3; step++) {
    grads = stacked();
    const s = randomScalars(rng, precision);
    const cPred = c.predicted ? [1, 3, 4] : [];
    const records = c.perturb.map((perturb, r) => ({ ...s, perturb, cPred: cPred[r] }));
    gpu.device.queue.writeBuffer(scalars, 0, packRunScalars(precision, records));
    gpu.device.queue.writeBuffer(G, 0, encodeReals(precision, grads));
    if (step === 2) before = await readReals(gpu, precision, P, p.length);
    runDispatches(gpu, step === 2 ? monitor : norms);
    records.forEach((s, r) => {
      const g = slice(grads, r), m = s.momentum;
      const [pS, gS, bS] = [refP[r], g, refB[r]].map((a) => a.subarray(0, S));
      const [pO, gO, bO] = [refP[r], g, refB[r]].map((a) => a.subarray(S));
      sgdStep(pS, gS, bS, { lr: s.lrS, wd: s.wdS, shrink: s.shrinkS, momentum: m });
      sgdStep(pO, gO, bO, { lr: s.lrO, wd: s.wdO, shrink: s.shrinkO, momentum: m });
      if (s.perturb === 0) return;
      for (let i = 0; i < S; i++) pS[i] *= 1 + s.perturb * perturbSign(s.seed, s.step, r, i);
    });
  }
  const gotP = await readReals(gpu, precision, P, p.length);
  const gotB = await readReals(gpu, precision, B, p.length);
  const what = `${precision} R=${runs} S=${c.segments} O=${c.oSize}`;
  for (let r = 0; r < runs; r++) {
    assertClose(slice(gotP, r), refP[r], tol.update, tol.update, `${what} run ${r} params`);
    assertClose(slice(gotB, r), refB[r], tol.update, tol.update, `${what} run ${r} bufs`);
  }
  for (let k = 0; k < p.length; k++) {
    const inRun = k >= off && (k - off) % stride < size;
    if (!inRun && !(Number.isNaN(gotP[k]) && Number.isNaN(gotB[k]))) {
      throw new Error(`${what}: the optimizer wrote outside the runs at element ${k}`);
    }
  }
  const sums = await readReals(gpu, precision, record);
  const layers = await readReals(gpu, precision, sNorms);
  checkSums(precision, c, sums, layers, {
    before: (r) => slice(before, r).subarray(0, S),
    after: (r) => slice(gotP, r).subarray(0, S),
    grads: (r) => slice(grads, r).subarray(0, S),
  }, what);
}

/** The monitor's sums of the last step against float64 sums of the GPU's own vectors. */
function checkSums(
  precision: "f32" | "df64",
  c: Case,
  got: Reals,
  layers: Reals,
  v: Record<"before" | "after" | "grads", (r: number) => Reals>,
  what: string,
): void {
  const tol = TOLERANCE[precision], runs = c.perturb.length, L = c.segments.length;
  const M = OPTIMIZER_TERMS.length + L + 1;
  const at = (r: number, t: OptimizerTerm) => got[r * M + OPTIMIZER_TERMS.indexOf(t)];
  const abs = (a: Reals) => a.map(Math.abs);
  for (let r = 0; r < runs; r++) {
    const [w0, w1, g] = [v.before(r), v.after(r), v.grads(r)];
    const close = (x: number, want: number, scale: number, s: string) =>
      assertClose([x], [want], 0, tol.sum * scale, `${what} run ${r} ${s}`);
    close(at(r, "norm2_before"), dot(w0, w0), dot(w0, w0), "|w_t|²");
    close(at(r, "grad_dot_w"), dot(g, w0), dot(abs(g), abs(w0)), "<g, w_t>");
    close(at(r, "grad_norm2"), dot(g, g), dot(g, g), "|g|²");
    close(at(r, "norm2"), dot(w1, w1), dot(w1, w1), "|w_t+1|²");
    const distance = (sumsAngle: number, ref: number, s: string) => {
      const [rtol, atol] = tol.distance(ref);
      const d2 = (2 * Math.sin(sumsAngle / 2)) ** 2;
      assertClose([d2], [ref], rtol, atol, `${what} run ${r} ${s}`);
    };
    const update = angleFromSums(
      at(r, "prev_diff2"),
      at(r, "prev_diff_sum"),
      at(r, "norm2"),
      at(r, "norm2_before"),
    );
    distance(update, normalizedDistance(w1, w0), "|ŵ_t+1 - ŵ_t|²");
    const toA = angleFromSums(
      at(r, "a_diff2"),
      at(r, "a_diff_sum"),
      at(0, "scaled_norm2"),
      at(r, "scaled_norm2"),
    );
    distance(toA, normalizedDistance(v.after(0), w1), "|ŵ_A - ŵ|²");
    let start = 0;
    c.segments.forEach((len, l) => {
      const [b, a] = [w0, w1].map((x) => x.subarray(start, start + len));
      close(got[r * M + OPTIMIZER_TERMS.length + l], dot(b, b), dot(b, b), `layer ${l} before`);
      close(layers[r * L + l], dot(a, a), dot(a, a), `layer ${l} after`);
      start += len;
    });
    if (!Number.isNaN(got[r * M + M - 1])) throw new Error(`${what}: wrote past run ${r}'s sums`);
  }
}

gpuTest(
  "optimizer (f32): 3 steps vs float64 sgdStep and perturbation; the monitor's sums and angles vs float64 sums of the GPU's weights",
  async (gpu) => {
    const rng = freshRng("optimizer f32");
    const u = 2 ** -23;
    // Tensors off the chunk and workgroup sizes, one of several chunks; O of none to several.
    const cases: Case[] = [
      { segments: [7], oSize: 0, perturb: [0] },
      { segments: [5000, 37], oSize: 13, perturb: [0, 0, u], predicted: true },
      { segments: [3 * CHUNK + 11, 300], oSize: CHUNK + 5, perturb: [0, u, 0] },
    ];
    for (const c of cases) await checkCase(gpu, rng, "f32", c);
  },
);

gpuTest("optimizer (df64): 3 steps, sums and angles to 1e-12", async (gpu) => {
  const rng = freshRng("optimizer df64");
  const cases: Case[] = [
    { segments: [7], oSize: 3, perturb: [0] },
    { segments: [5000, 37, CHUNK + 11], oSize: 20, perturb: [0, 0, 0.0123456789] },
    { segments: [300, 2 * CHUNK], oSize: 0, perturb: [0, 0, 0], predicted: true },
  ];
  for (const c of cases) await checkCase(gpu, rng, "df64", c);
});

gpuTest(
  "optimizer: A2's perturbation is p*(1 ± 2^-23) bit for bit with perturbSign's signs, on S only; both variants update alike",
  async (gpu) => {
    const rng = freshRng("optimizer perturbation");
    const precision = "f32",
      u = 2 ** -23,
      segments = [3000, 2 * CHUNK + 1],
      S = 3000 + 2 * CHUNK + 1;
    const size = S + 500, runs = 2;
    const twin = (a: Float64Array) => Float64Array.from([...a, ...a]);
    const one = () => randomReals(rng, precision, size);
    const p = twin(one()), buf = twin(one()), g = twin(one());
    const s = { ...randomScalars(rng, precision) };
    const records = [{ ...s, perturb: 0 }, { ...s, perturb: u }];
    const run = async (monitor: boolean) => {
      const [P, B, G] = [p, buf, g].map((a) => uploadReals(gpu, precision, a));
      const scalars = storageBuffer(gpu, runs, "scalars", runScalarsBytes(precision));
      gpu.device.queue.writeBuffer(scalars, 0, packRunScalars(precision, records));
      const record = realBuffer(gpu, precision, runs * 16);
      runDispatches(
        gpu,
        sgdKernel(gpu, {
          precision,
          runs,
          size,
          segments,
          params: view(P, size),
          grads: view(G, size),
          bufs: view(B, size),
          scalars,
          sNorms: view(realBuffer(gpu, precision, runs * 2), 2),
          monitor: monitor
            ? { totals: view(record, 16), layerNorm2Before: view(record, 16, 12) }
            : undefined,
        }),
      );
      return await readReals(gpu, precision, P, p.length);
    };
    const got = await run(false), metered = await run(true);
    if (got.some((x, i) => !Object.is(x, metered[i]))) {
      throw new Error("the monitor variant's update differs from the norms variant's");
    }
    let plus = 0;
    for (let i = 0; i < size; i++) {
      const a = got[i], sign = perturbSign(s.seed, s.step, 1, i);
      // Both factors have 24-bit mantissas, so the double product is exact; fround rounds once.
      const want = i < S ? Math.fround(a * (1 + u * sign)) : a;
      if (!Object.is(got[size + i], want)) {
        throw new Error(`element ${i}: run 1 holds ${got[size + i]}, expected ${want}`);
      }
      if (i < S && sign === 1) plus++;
    }
    // ~36k signs: the fraction of +1 has standard deviation 2.6e-3.
    if (Math.abs(plus / S - 0.5) > 0.015) throw new Error(`fraction of +1 signs ${plus / S}`);
  },
);

Deno.test("perturbSign: streams of different steps, runs and seeds are uncorrelated", () => {
  const n = 100000;
  const agree = (f: (i: number) => number, g: (i: number) => number) => {
    let same = 0;
    for (let i = 0; i < n; i++) if (f(i) === g(i)) same++;
    return same / n;
  };
  const base = (i: number) => perturbSign(7, 100, 1, i);
  const others: [string, (i: number) => number][] = [
    ["step+1", (i) => perturbSign(7, 101, 1, i)],
    ["run+1", (i) => perturbSign(7, 100, 2, i)],
    ["seed+1", (i) => perturbSign(8, 100, 1, i)],
    ["index+1", (i) => perturbSign(7, 100, 1, i + 1)],
  ];
  for (const [what, g] of others) {
    const a = agree(base, g); // std 0.0016
    if (Math.abs(a - 0.5) > 0.01) throw new Error(`perturbSign vs ${what}: agreement ${a}`);
  }
});
