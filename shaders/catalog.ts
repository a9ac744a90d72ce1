/**
 * Every kernel variant's WGSL generator by name, a representative set covering each branch of
 * every template: `shaders/catalog_test.ts` compiles them all on the adapter, and
 * `deno task wgsl [substring]` prints them (bench/wgsl.ts).
 *
 * Names are `<module>.<variant>[.df64]`: e.g. "relu.forward",
 * "batchnorm.forward.train.affine.save.update.unit", "matmul.NT.bias.default.df64".
 *
 * @module
 */

import { addWgsl } from "./add.ts";
import { type BatchNormVariant, batchNormWgsl } from "./batchnorm.ts";
import { type GroupNormStage, type GroupNormVariant, groupNormWgsl } from "./groupnorm.ts";
import { defaultTiling, type MatmulTiling, matmulWgsl, SCALAR_TILING } from "./matmul.ts";
import { type PoolKind, poolWgsl } from "./pool.ts";
import { probeDistanceWgsl } from "./probe_distance.ts";
import { columnSumWgsl } from "./reduce.ts";
import { chunkSumsWgsl, totalSumsWgsl } from "./sums.ts";
import { type ReluDirection, reluWgsl } from "./relu.ts";
import { type ScaleSVariant, scaleSWgsl } from "./scale_s.ts";
import { type OptimizerVariant, sgdWgsl } from "./sgd.ts";
import { softmaxXentWgsl } from "./softmax_xent.ts";
import type { Precision } from "./precision.ts";
import { DF64_OPS, df64OpWgsl } from "./df64_op.ts";

type Forward = Extract<BatchNormVariant, { pass: "forward" }>;
type Backward = Extract<BatchNormVariant, { pass: "backward" }>;

/** The name of a BatchNorm variant: its pass, mode and the flags that are set. */
function batchNormName(v: BatchNormVariant): string {
  const flags = (o: Record<string, unknown>) =>
    Object.entries(o).flatMap(([k, x]) => (x === true ? [k] : []));
  const parts = v.pass === "forward"
    ? [v.mode, ...flags({ affine: v.affine, save: v.save, update: v.update, unit: v.unit })]
    : flags({ gamma: v.gamma, dgamma: v.dgamma, dbeta: v.dbeta });
  const eps = v.pass === "forward" && v.epsField === "eps_next" ? ["eps_next"] : [];
  const relu = v.relu ? ["relu"] : [];
  const stage = v.stage !== "whole" ? [v.stage] : [];
  return ["batchnorm", v.pass, ...parts, ...eps, ...relu, ...stage].join(".");
}

const fwd = (mode: Forward["mode"], flags: Partial<Forward> = {}): Forward => ({
  pass: "forward",
  mode,
  affine: false,
  save: false,
  update: false,
  unit: false,
  epsField: "eps",
  relu: false,
  stage: "whole",
  ...flags,
});
const bwd = (flags: Partial<Backward> = {}): Backward => ({
  pass: "backward",
  gamma: false,
  dgamma: false,
  dbeta: false,
  relu: false,
  stage: "whole",
  ...flags,
});

const BATCHNORM: BatchNormVariant[] = [
  fwd("train", { affine: true, save: true, update: true, unit: true }),
  fwd("train", { affine: true, save: true, update: true }),
  fwd("train", { save: true }),
  fwd("train", { epsField: "eps_next" }),
  fwd("eval", { affine: true, unit: true, epsField: "eps_next" }),
  fwd("eval"),
  bwd({ gamma: true, dgamma: true, dbeta: true }),
  bwd(),
  fwd("train", { affine: true, save: true, update: true, unit: true, relu: true }),
  fwd("eval", { affine: true, unit: true, relu: true }),
  bwd({ gamma: true, dgamma: true, dbeta: true, relu: true }),
  // The split design's passes (many rows).
  ...(["partials", "stats", "apply"] as const).flatMap((stage) => [
    fwd("train", { affine: true, save: true, update: true, unit: true, relu: true, stage }),
    fwd("train", { epsField: "eps_next", stage }),
    bwd({ gamma: true, dgamma: true, dbeta: true, relu: true, stage }),
    bwd({ stage }),
  ]),
  fwd("eval", { affine: true, unit: true, epsField: "eps_next", stage: "stats" }),
  fwd("eval", { affine: true, relu: true, stage: "apply" }),
];

/** The name of a GroupNorm variant: its pass, stage and the flags that are set. */
function groupNormName(v: GroupNormVariant): string {
  const { pass, stage, ...rest } = v;
  const flags = Object.entries(rest).flatMap(([k, x]) => (x === true ? [k] : []));
  const eps = "epsField" in rest && rest.epsField === "eps_next" ? ["eps_next"] : [];
  return ["groupnorm", pass, stage, ...flags, ...eps].join(".");
}

const gnFwd = (stage: GroupNormStage, on: boolean, eps: "eps" | "eps_next"): GroupNormVariant => ({
  pass: "forward",
  stage,
  affine: on,
  save: on,
  relu: on,
  epsField: eps,
});
type GnBackward = Extract<GroupNormVariant, { pass: "backward" }>;
const gnBwd = (stage: GroupNormStage, flags: Partial<GnBackward> = {}): GnBackward => ({
  pass: "backward",
  stage,
  gamma: false,
  dgamma: false,
  dbeta: false,
  relu: false,
  ...flags,
});

/** Each stage of both passes with the flags it reads on and off. */
const GROUPNORM: GroupNormVariant[] = [
  gnFwd("partials", false, "eps"),
  gnFwd("stats", true, "eps"),
  gnFwd("stats", false, "eps_next"),
  gnFwd("apply", true, "eps"),
  gnFwd("apply", false, "eps"),
  gnBwd("partials", { relu: true }),
  gnBwd("partials"),
  gnBwd("stats", { gamma: true, dgamma: true, dbeta: true }),
  gnBwd("stats", { dbeta: true }),
  gnBwd("stats"),
  gnBwd("apply", { gamma: true, relu: true }),
  gnBwd("apply"),
];

/** Products by name (NN = C = A·B, NT = A·Bᵀ, TN = Aᵀ·B, TT) and the tilings they get. */
const PRODUCTS: Record<string, [boolean, boolean]> = {
  NN: [false, false],
  NT: [false, true],
  TN: [true, false],
  TT: [true, true],
};
const TILINGS: Record<string, (transA: boolean, precision: Precision) => MatmulTiling> = {
  default: defaultTiling,
  scalar: () => SCALAR_TILING,
  // chooseTiling's shrunk block for small products (the head), vec4 A only in float32.
  small: (transA, precision) => ({
    ...defaultTiling(transA, precision),
    tm: 8,
    tn: 4,
    vecB: false,
    vecC: false,
  }),
};

/** A catalogued variant: its name and its WGSL in a given precision. */
export type Entry = [string, (precision: Precision) => string];

function matmulEntries(): Entry[] {
  const out: Entry[] = [];
  for (const [p, [transA, transB]] of Object.entries(PRODUCTS)) {
    for (const bias of [false, true]) {
      for (const [t, tiling] of Object.entries(TILINGS)) {
        const name = ["matmul", p, ...(bias ? ["bias"] : []), t].join(".");
        out.push([
          name,
          (precision) => matmulWgsl({ transA, transB, bias }, tiling(transA, precision), precision),
        ]);
      }
    }
  }
  return out;
}

const each = <T extends string>(
  prefix: string,
  keys: T[],
  gen: (k: T, precision: Precision) => string,
) => keys.map((k): Entry => [`${prefix}.${k}`, (precision) => gen(k, precision)]);

/** The kernels of the trainer by name, each a generator of its WGSL in any precision. */
export const KERNELS: readonly Entry[] = [
  ...each<ReluDirection>("relu", ["forward", "backward"], reluWgsl),
  ...BATCHNORM.map((v): Entry => [batchNormName(v), (precision) => batchNormWgsl(v, precision)]),
  ...GROUPNORM.map((v): Entry => [groupNormName(v), (precision) => groupNormWgsl(v, precision)]),
  ...matmulEntries(),
  ["softmax_xent", softmaxXentWgsl],
  ["reduce.columnSum", columnSumWgsl],
  [
    "sums.chunks",
    (precision) => chunkSumsWgsl([{ a: "w", b: "g" }, { a: "g", b: "g" }], precision),
  ],
  ["sums.totals", (precision) => totalSumsWgsl(true, [0], 2, precision)],
  ["sums.totals.layers", (precision) => totalSumsWgsl(false, [0], 1, precision)],
  ...each<OptimizerVariant>("optimizer", ["norms", "monitor"], (v, p) => sgdWgsl(v, 3, p)),
  ...each<ScaleSVariant>("scale_s", ["rescale", "rescale-stats"], scaleSWgsl),
  ["probe_distance", probeDistanceWgsl],
  ["probe_distance.no_correct", (precision) => probeDistanceWgsl(precision, false)],
  ["add", addWgsl],
  ...each<PoolKind>("pool", ["avgForward", "avgBackward", "maxForward", "maxBackward"], poolWgsl),
];

/**
 * Every catalogued kernel variant: name -> its WGSL generator. The trainer's kernels come in
 * float32 (plain names) and df64 ("<name>.df64"; native f64 needs an adapter with shader-f64,
 * so it is not listed); the df64 primitives ("df64.<op>") are the self-test's.
 */
export const WGSL_CATALOG: Record<string, () => string> = Object.fromEntries([
  ...KERNELS.map(([name, gen]): [string, () => string] => [name, () => gen("f32")]),
  ...KERNELS.map(([name, gen]): [string, () => string] => [`${name}.df64`, () => gen("df64")]),
  ...DF64_OPS.map((op): [string, () => string] => [`df64.${op}`, () => df64OpWgsl(op)]),
]);
