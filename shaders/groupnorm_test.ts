/**
 * The GroupNorm kernels against the float64 twin (reference/groupnorm.ts), on fresh random
 * inputs exact in the kernel's precision: odd images, flat LayerNorm, one element per group, a
 * group longer than a lane's block with dgamma/dbeta split into chunks, and more workgroups
 * than one grid dimension holds; runs stacked with padded strides and distinct eps per run;
 * outputs poisoned first, and every element outside the outputs checked untouched; the same
 * checks at non-default tilings (a tuner's choices), and bad tilings refused.
 *
 * @module
 */

import type { GroupNormGeometry } from "../core/graph.ts";
import type { Rng } from "../core/prng.ts";
import { assertClose, assertThrows, freshRng } from "../core/test_util.ts";
import { groupNormBackward, groupNormForward } from "../reference/groupnorm.ts";
import { reluBackward, reluForward } from "../reference/ops.ts";
import { type Gpu, poison, readReals, realBuffer, runDispatches, uploadReals } from "./gpu.ts";
import { dryGpu } from "./dry_gpu.ts";
import {
  DEFAULT_GROUPNORM_TILING,
  groupNormBackwardKernel,
  groupNormForwardKernel,
  type GroupNormTiling,
  MAX_COLUMN_TERMS,
} from "./groupnorm.ts";
import {
  channelSumsAtol,
  encodeReals,
  heldReals,
  type Precision,
  randomReals,
} from "./precision.ts";
import {
  Arena,
  assertUntouched,
  dryView,
  epsScalars,
  gpuTest,
  maxAbs,
  place,
  take,
  viewOf,
} from "./test_gpu.ts";

/**
 * rtol, and atol as a fraction of a scale of the data: elements near zero keep only the
 * absolute accuracy of the terms that formed them. float32 (u = 6e-8): 1e-5 and 1e-5; df64
 * (each operation within ~2^-47 relative, df64.ts) and f64: 1e-12, about 100 such roundings.
 */
const TOL: Record<Precision, { rtol: number; atol: number }> = {
  f32: { rtol: 1e-5, atol: 1e-5 },
  df64: { rtol: 1e-12, atol: 1e-12 },
  f64: { rtol: 1e-12, atol: 1e-12 },
};

/** Compares with rtol and the precision's atol times max(|expected|, `scale`). */
function close(
  p: Precision,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
  scale = 0,
) {
  const atol = TOL[p].atol * Math.max(maxAbs(expected), scale) + 1e-30;
  assertClose(actual, expected, TOL[p].rtol, atol, what);
}

const EPS = [1e-5, 1e-2, 0.3];
const EPS_NEXT = [0.5, 2e-3, 1e-4];

const size = (g: GroupNormGeometry) => g.rows * g.spatial * g.channels;

interface ForwardCase {
  precision: Precision;
  runs: number;
  geometry: GroupNormGeometry;
  affine: boolean;
  save: boolean;
  relu: boolean;
  epsField: "eps" | "eps_next";
  /** y written over x's view. */
  inPlace?: boolean;
  /** The kernels' tiling (absent: the default). */
  tiling?: Partial<GroupNormTiling>;
}

/** A case's tiling in its tag. */
const tilingTag = (t?: Partial<GroupNormTiling>) => (t ? ` tiling=${JSON.stringify(t)}` : "");

async function checkForward(gpu: Gpu, rng: Rng, c: ForwardCase): Promise<void> {
  const { precision: p, runs: R, geometry: g } = c;
  const N = size(g), C = g.channels;
  const tag = `forward ${p} R${R} ${JSON.stringify(g)} affine=${c.affine} save=${c.save} ` +
    `relu=${c.relu} ${c.epsField}${c.inPlace ? " in place" : ""}${tilingTag(c.tiling)}`;
  // x in its own buffer (in place: in the output buffer, as y); gamma, beta in a "parameter"
  // buffer; y, xhat, invStd in one poisoned "activation" buffer.
  const inA = new Arena(), parA = new Arena(), outA = new Arena();
  const xS = (c.inPlace ? outA : inA).alloc(R, N);
  const gS = parA.alloc(R, C), bS = parA.alloc(R, C);
  const yS = c.inPlace ? xS : outA.alloc(R, N);
  const hS = outA.alloc(R, N), iS = outA.alloc(R, g.rows * g.groups);
  const xs = Array.from({ length: R }, () => {
    const scale = rng.uniform(0.5, 4), shift = rng.uniform(-2, 2);
    return randomReals(rng, p, N, shift - scale, shift + scale);
  });
  const gammas = Array.from({ length: R }, () => randomReals(rng, p, C, 0.5, 2));
  const betas = Array.from({ length: R }, () => randomReals(rng, p, C, -1, 1));
  const parData = new Float64Array(parA.size).fill(NaN);
  place(parData, R, gS, (r) => gammas[r]);
  place(parData, R, bS, (r) => betas[r]);
  const parBuf = uploadReals(gpu, p, parData);
  const outBuf = realBuffer(gpu, p, outA.size);
  poison(gpu, outBuf);
  let inBuf = outBuf;
  if (c.inPlace) {
    const outData = new Float64Array(outA.size).fill(NaN);
    place(outData, R, xS, (r) => xs[r]);
    gpu.device.queue.writeBuffer(outBuf, 0, encodeReals(p, outData));
  } else {
    const inData = new Float64Array(inA.size).fill(NaN);
    place(inData, R, xS, (r) => xs[r]);
    inBuf = uploadReals(gpu, p, inData);
  }
  const sc = epsScalars(gpu, p, EPS.slice(0, R), EPS_NEXT.slice(0, R));
  const epsOf = c.epsField === "eps" ? sc.eps : sc.epsNext;
  runDispatches(
    gpu,
    groupNormForwardKernel(gpu, {
      precision: p,
      runs: R,
      geometry: g,
      x: viewOf(inBuf, xS),
      y: viewOf(outBuf, yS),
      relu: c.relu,
      xhat: c.save ? viewOf(outBuf, hS) : undefined,
      invStd: c.save ? viewOf(outBuf, iS) : undefined,
      gamma: c.affine ? viewOf(parBuf, gS) : undefined,
      beta: c.affine ? viewOf(parBuf, bS) : undefined,
      scalars: sc.buffer,
      epsField: c.epsField,
    }, c.tiling),
  );
  const out = await readReals(gpu, p, outBuf);
  for (let r = 0; r < R; r++) {
    const gamma = c.affine ? gammas[r] : undefined, beta = c.affine ? betas[r] : undefined;
    const ref = groupNormForward(xs[r], g, epsOf[r], gamma, beta);
    const what = `${tag} run ${r}`;
    // xhat = (x - mean)·invStd: the inputs' rounding moves it by ~ulp(x)·invStd however small it
    // is, so its scale is max|x|·max(invStd) (times max|gamma| for y).
    const cond = maxAbs(xs[r]) * maxAbs(ref.invStd);
    const y = c.relu ? reluForward(ref.y) : ref.y;
    close(p, take(out, yS, r), y, `${what} y`, cond * (gamma ? maxAbs(gamma) : 1));
    if (c.save) {
      close(p, take(out, hS, r), ref.xhat, `${what} xhat`, cond);
      close(p, take(out, iS, r), ref.invStd, `${what} invStd`);
    }
  }
  assertUntouched(out, R, [yS, ...(c.save ? [hS, iS] : [])], `${tag} activation buffer`);
}

interface BackwardCase {
  precision: Precision;
  runs: number;
  geometry: GroupNormGeometry;
  affine: boolean;
  relu: boolean;
  /** Ask for dgamma and dbeta (default: with affine). */
  grads?: boolean;
  /** dx written over dy's view. */
  inPlace?: boolean;
  /** The kernels' tiling (absent: the default). */
  tiling?: Partial<GroupNormTiling>;
}

async function checkBackward(gpu: Gpu, rng: Rng, c: BackwardCase): Promise<void> {
  const { precision: p, runs: R, geometry: g, affine, relu } = c;
  const grads = c.grads ?? affine;
  const N = size(g), C = g.channels;
  const tag = `backward ${p} R${R} ${JSON.stringify(g)} affine=${affine} relu=${relu} ` +
    `grads=${grads}${c.inPlace ? " in place" : ""}${tilingTag(c.tiling)}`;
  const inA = new Arena(), outA = new Arena();
  const dyS = (c.inPlace ? outA : inA).alloc(R, N);
  const hS = inA.alloc(R, N), iS = inA.alloc(R, g.rows * g.groups);
  const gS = inA.alloc(R, C), yS = inA.alloc(R, N);
  const dxS = c.inPlace ? dyS : outA.alloc(R, N);
  const dgS = outA.alloc(R, C), dbS = outA.alloc(R, C);
  // xhat, invStd and relu(y) as a forward would leave them (held in the precision).
  const xhats: Float64Array[] = [], invs: Float64Array[] = [], ys: Float64Array[] = [];
  const dys: Float64Array[] = [], gammas: Float64Array[] = [];
  for (let r = 0; r < R; r++) {
    // A shift makes the positive fraction of the fused output differ per run.
    const beta = new Float64Array(C).fill(0.4 * r - 0.4);
    const ref = groupNormForward(randomReals(rng, p, N, -2, 2), g, EPS[r], undefined, beta);
    xhats.push(heldReals(p, ref.xhat));
    invs.push(heldReals(p, ref.invStd));
    ys.push(heldReals(p, reluForward(ref.y)));
    dys.push(randomReals(rng, p, N));
    gammas.push(randomReals(rng, p, C, 0.5, 2));
  }
  const inData = new Float64Array(inA.size).fill(NaN);
  place(inData, R, hS, (r) => xhats[r]);
  place(inData, R, iS, (r) => invs[r]);
  place(inData, R, gS, (r) => gammas[r]);
  place(inData, R, yS, (r) => ys[r]);
  const outData = new Float64Array(outA.size).fill(NaN);
  place(c.inPlace ? outData : inData, R, dyS, (r) => dys[r]);
  const inBuf = uploadReals(gpu, p, inData), outBuf = realBuffer(gpu, p, outA.size);
  poison(gpu, outBuf); // the padding past the arena too
  gpu.device.queue.writeBuffer(outBuf, 0, encodeReals(p, outData));
  runDispatches(
    gpu,
    groupNormBackwardKernel(gpu, {
      precision: p,
      runs: R,
      geometry: g,
      dy: viewOf(c.inPlace ? outBuf : inBuf, dyS),
      xhat: viewOf(inBuf, hS),
      invStd: viewOf(inBuf, iS),
      gamma: affine ? viewOf(inBuf, gS) : undefined,
      y: relu ? viewOf(inBuf, yS) : undefined,
      dx: viewOf(outBuf, dxS),
      dgamma: grads ? viewOf(outBuf, dgS) : undefined,
      dbeta: grads ? viewOf(outBuf, dbS) : undefined,
    }, c.tiling),
  );
  const out = await readReals(gpu, p, outBuf);
  for (let r = 0; r < R; r++) {
    const what = `${tag} run ${r}`;
    const gamma = affine ? gammas[r] : undefined;
    const dy = relu ? reluBackward(dys[r], ys[r]) : dys[r];
    const ref = groupNormBackward(
      dy,
      { xhat: xhats[r], mean: new Float64Array(), invStd: invs[r] },
      g,
      gamma,
    );
    // dx = invStd/L·(L·dh - Σdh - xhat·Σdh·xhat) cancels (L = 1: exactly 0): its error is a few
    // roundings of its terms, whose scale is max(invStd)·max|dh|·max(1, max|xhat|).
    const terms = maxAbs(invs[r]) * maxAbs(dy) * (gamma ? maxAbs(gamma) : 1) *
      Math.max(1, maxAbs(xhats[r]));
    close(p, take(out, dxS, r), ref.dx, `${what} dx`, terms);
    if (grads) {
      // A sum's error is a few roundings of its channel's Σ|term| (channelSumsAtol).
      const n = dy.length;
      for (
        const [s, expected, term] of [
          [dgS, ref.dgamma, (k: number) => dy[k] * xhats[r][k]],
          [dbS, ref.dbeta, (k: number) => dy[k]],
        ] as const
      ) {
        assertClose(
          take(out, s, r),
          expected,
          TOL[p].rtol,
          channelSumsAtol(p, n, C, term),
          `${what} ${s === dgS ? "dgamma" : "dbeta"}`,
        );
      }
    }
  }
  assertUntouched(out, R, [dxS, ...(grads ? [dgS, dbS] : [])], `${tag} output buffer`);
}

const ODD_IMAGE = { rows: 3, spatial: 5, channels: 6, groups: 3 };
const LAYERNORM = { rows: 7, spatial: 1, channels: 37, groups: 1 };
const IMAGE = { rows: 4, spatial: 49, channels: 12, groups: 4 };
/** L = 1: xhat = 0, dx = 0. */
const SINGLETONS = { rows: 5, spatial: 1, channels: 4, groups: 4 };
/** L = 7200; 900 positions: 8 chunks, the last of 4. */
const LONG = { rows: 3, spatial: 900, channels: 8, groups: 1 };
const SHAPES: GroupNormGeometry[] = [ODD_IMAGE, LAYERNORM, IMAGE, SINGLETONS, LONG];

Deno.test("the long shape's positions end in a short chunk", () => {
  const chunk = DEFAULT_GROUPNORM_TILING.chunkPositions;
  if (LONG.spatial <= chunk || LONG.spatial % chunk === 0) {
    throw new Error("several chunks with a tail untested");
  }
});

for (const runs of [1, 3]) {
  gpuTest(
    `groupNormForwardKernel f32 (affine/plain, save, relu, eps fields), R=${runs}`,
    async (gpu) => {
      const rng = freshRng(`groupnorm forward f32 R=${runs}`);
      for (const geometry of SHAPES) {
        const base = { precision: "f32" as const, runs, geometry };
        await checkForward(gpu, rng, {
          ...base,
          affine: true,
          save: true,
          relu: false,
          epsField: "eps",
        });
        await checkForward(gpu, rng, {
          ...base,
          affine: false,
          save: true,
          relu: true,
          epsField: "eps_next",
        });
        await checkForward(gpu, rng, {
          ...base,
          affine: true,
          save: false,
          relu: true,
          epsField: "eps",
        });
      }
    },
  );

  gpuTest(
    `groupNormBackwardKernel f32 (affine/plain, relu, with/without dgamma), R=${runs}`,
    async (gpu) => {
      const rng = freshRng(`groupnorm backward f32 R=${runs}`);
      for (const geometry of SHAPES) {
        const base = { precision: "f32" as const, runs, geometry };
        await checkBackward(gpu, rng, { ...base, affine: true, relu: false });
        await checkBackward(gpu, rng, { ...base, affine: true, relu: true });
        await checkBackward(gpu, rng, { ...base, affine: false, relu: true, grads: true });
        await checkBackward(gpu, rng, { ...base, affine: false, relu: false });
      }
    },
  );
}

gpuTest(
  "groupNorm f32 in place (y over x, dx over dy) with workgroups folded past 65535",
  async (gpu) => {
    const rng = freshRng("groupnorm in place, folded grid");
    // 16384 · 258 = 4.2M (example, chunk, channel) threads: 66,048 workgroups of 64.
    const folded = { rows: 16384, spatial: 1, channels: 258, groups: 6 };
    // Dawn's SwiftShader spends ~30 s on those grids (lavapipe 4 s); the WGSL is the same at
    // every grid size, so there the small shape checks it.
    const dawn = gpu.implementation === "dawn";
    if (dawn) console.error("dawn: the folded grid is left to the other implementations");
    for (const geometry of dawn ? [IMAGE] : [folded, IMAGE]) {
      const base = { precision: "f32" as const, runs: 1, geometry, inPlace: true };
      await checkForward(gpu, rng, {
        ...base,
        affine: true,
        save: true,
        relu: true,
        epsField: "eps",
      });
      await checkBackward(gpu, rng, { ...base, affine: true, relu: true });
    }
  },
);

for (const p of ["df64", "f64"] as const) {
  gpuTest(`groupNorm forward and backward in ${p} to 1e-12, R=3`, async (gpu) => {
    if (p === "f64" && !gpu.f64) {
      console.error("no shader-f64 on this adapter: the f64 kernels are not run");
      return;
    }
    const rng = freshRng(`groupnorm ${p}`);
    for (const geometry of [ODD_IMAGE, LAYERNORM, LONG]) {
      const base = { precision: p, runs: 3, geometry };
      await checkForward(gpu, rng, {
        ...base,
        affine: true,
        save: true,
        relu: true,
        epsField: "eps",
      });
      await checkForward(gpu, rng, {
        ...base,
        affine: false,
        save: true,
        relu: false,
        epsField: "eps_next",
      });
      await checkBackward(gpu, rng, { ...base, affine: true, relu: true });
      await checkBackward(gpu, rng, { ...base, affine: false, relu: false, grads: true });
    }
  });
}

/**
 * Tilings a tuner may pick, other than the default: smaller and larger chunks and workgroups,
 * and a chunk that is no power of two. No chunk divides SPAN's 2500 positions (79 chunks of 32,
 * the last of 4; 5 of 512, the last of 452; 3 of 1000, the last of 500); WIDE's `partials` and
 * `apply` take several workgroups of every size (8·40 = 320 threads at one chunk: two of 256).
 */
const TILINGS: Partial<GroupNormTiling>[] = [
  { chunkPositions: 32, workgroup: 32 },
  { chunkPositions: 512, workgroup: 128 },
  { chunkPositions: 1000, workgroup: 256 },
];
const WIDE = { rows: 8, spatial: 150, channels: 40, groups: 8 };
const SPAN = { rows: 2, spatial: 2500, channels: 3, groups: 1 };
/**
 * At 3 positions a chunk, 1100 rows of 21 chunks pass MAX_COLUMN_TERMS: the chunk grows to 6
 * (11 chunks, the last of 1).
 */
const GROWN: [Partial<GroupNormTiling>, GroupNormGeometry] = [
  { chunkPositions: 3, workgroup: 16 },
  { rows: 1100, spatial: 61, channels: 1, groups: 1 },
];

gpuTest("groupNorm forward and backward with non-default tilings, R=2", async (gpu) => {
  if (1100 * Math.ceil(61 / 3) <= MAX_COLUMN_TERMS) throw new Error("no chunk growth tested");
  const rng = freshRng("groupnorm tilings");
  const cases = [...TILINGS.flatMap((t) => [[t, WIDE], [t, SPAN]] as const), GROWN];
  for (const [tiling, geometry] of cases) {
    const base = { precision: "f32" as const, runs: 2, geometry, tiling };
    await checkForward(gpu, rng, {
      ...base,
      affine: true,
      save: true,
      relu: true,
      epsField: "eps",
    });
    await checkBackward(gpu, rng, { ...base, affine: true, relu: true });
    await checkBackward(gpu, rng, { ...base, affine: false, relu: false, grads: true });
  }
});

Deno.test("groupNorm kernels refuse a bad tiling, and too many rows whatever the chunk", () => {
  const gpu = dryGpu();
  const view = () => dryView(gpu);
  const spec = (geometry: GroupNormGeometry) => ({
    runs: 1,
    geometry,
    dy: view(),
    xhat: view(),
    invStd: view(),
    dx: view(),
    dgamma: view(),
  });
  const bad: Partial<GroupNormTiling>[] = [
    { workgroup: 0 },
    { workgroup: 96 },
    { workgroup: 1024 },
    { workgroup: 0.5 },
    { chunkPositions: 0 },
    { chunkPositions: -1 },
    { chunkPositions: 3.5 },
    { chunkPositions: NaN },
    { chunkRows: 64 } as Partial<GroupNormTiling>,
  ];
  for (const tiling of bad) {
    const message = `groupnorm: bad tiling ${
      JSON.stringify({ ...DEFAULT_GROUPNORM_TILING, ...tiling })
    }`;
    assertThrows(
      () =>
        groupNormForwardKernel(gpu, {
          runs: 1,
          geometry: IMAGE,
          x: view(),
          y: view(),
          scalars: view().buffer,
          epsField: "eps",
        }, tiling),
      message,
    );
    assertThrows(() => groupNormBackwardKernel(gpu, spec(IMAGE), tiling), message);
  }
  // The chunk grows until one spans every position: only the rows themselves can be too many.
  const tooMany = { rows: MAX_COLUMN_TERMS + 1, spatial: 3, channels: 2, groups: 1 };
  for (const tiling of [undefined, ...TILINGS, { chunkPositions: 1 }]) {
    assertThrows(
      () => groupNormBackwardKernel(gpu, spec(tooMany), tiling),
      `groupnorm: ${MAX_COLUMN_TERMS + 1} rows exceed the ${MAX_COLUMN_TERMS} its scale and shift`,
    );
  }
});
