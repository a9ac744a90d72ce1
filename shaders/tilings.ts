/**
 * The tilings a tuner may choose, as the kernel builders consult them. A {@link TuneRequest}
 * names one kernel instance: the kernel and product (a normalization's pass), its shape, runs
 * and precision, the flags that select its WGSL variant, and which operands sit where vec4
 * loads are allowed; {@link tuneKey} writes it as the line a tilings cache files it under. A
 * {@link Tilings} table answers a request with the tiling that replaces the instance's default,
 * or nothing (the default), and records every request worth tuning ({@link worthTuning}): the
 * tuner learns what a step builds by recording that step on a dry GPU.
 *
 * The variant spaces ({@link tuneSpace}) are the templates' own parameters around the
 * hand-picked default: register block, workgroup shape, depth split, vec4 loads, the direct
 * (window) forward convolution, normalization chunks and workgroups. Every variant respects
 * WebGPU's limits as the device reports them; one the builders refuse, or the adapter cannot
 * compile, is rejected when measured.
 *
 * @module
 */

import type { TuneSpace } from "../core/tune_search.ts";
import type { TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";
import { chooseTiling, type MatmulSpec, type MatmulTiling } from "./matmul.ts";
import { chooseConvTiling, type ConvProduct, type ConvTiling } from "./conv2d_tiling.ts";
import { type ConvSpecBase, convViews } from "./conv2d.ts";
import { type Conv2dShape, convOutputShape } from "../core/conv_shape.ts";
import {
  type BatchNormBackwardSpec,
  type BatchNormForwardSpec,
  batchNormForwardVariant,
  batchNormSplit,
  type BatchNormTiling,
  DEFAULT_BATCHNORM_TILING,
} from "./batchnorm.ts";
import {
  DEFAULT_GROUPNORM_TILING,
  type GroupNormBackwardSpec,
  groupNormChunk,
  type GroupNormForwardSpec,
  type GroupNormTiling,
} from "./groupnorm.ts";
import { backwardSlots, forwardSlots, MAX_NORMALIZATION_WORKGROUP } from "./normalization.ts";

/** One matmul product, as the lowering builds it. */
export interface MatmulRequest {
  kernel: "matmul";
  spec: MatmulSpec;
}

/** One convolution product (its spec holds the views `CONV_OPERANDS` names). */
export interface ConvRequest {
  kernel: "conv";
  product: ConvProduct;
  spec: ConvSpecBase;
}

/** One pass of a normalization: its forward's spec or its backward's. */
export type NormalizationPass<F, B> = { pass: "forward"; spec: F } | { pass: "backward"; spec: B };

/** A BatchNorm pass, as the lowering builds it. */
export type BatchNormPass = NormalizationPass<BatchNormForwardSpec, BatchNormBackwardSpec>;

/** A GroupNorm (or LayerNorm) pass, as the lowering builds it. */
export type GroupNormPass = NormalizationPass<GroupNormForwardSpec, GroupNormBackwardSpec>;

/** One BatchNorm pass (requested in the split design's training pass only: {@link worthTuning}). */
export type BatchNormRequest = { kernel: "batchnorm" } & BatchNormPass;

/** One GroupNorm pass (requested in the training pass only: {@link worthTuning}). */
export type GroupNormRequest = { kernel: "groupnorm" } & GroupNormPass;

/** A normalization pass a tuner can tile. */
export type NormalizationRequest = BatchNormRequest | GroupNormRequest;

/** A kernel instance a tuner can tile. */
export type TuneRequest = MatmulRequest | ConvRequest | NormalizationRequest;

/** A tiling as the cache stores it: the fields that replace the default's. */
export type TilingOverride = Record<string, number | boolean>;

/** The limits a variant must respect (a device's `limits`). */
export type TuneLimits = Pick<
  GPUSupportedLimits,
  "maxComputeInvocationsPerWorkgroup" | "maxComputeWorkgroupSizeX" | "maxComputeWorkgroupSizeY"
>;

/** Whether vec4 loads of `v` are allowed by its place: offset, run stride, buffer size. */
export function vec4Aligned(v: TensorView): boolean {
  return v.offset % 4 === 0 && v.runStride % 4 === 0 && v.buffer.size % 16 === 0;
}

const align = (views: (TensorView | undefined)[], precision: Precision) =>
  precision === "f32"
    ? ` align ${views.map((v) => (v === undefined ? "-" : vec4Aligned(v) ? "4" : "1")).join("")}`
    : "";

const shapeText = (s: Conv2dShape) =>
  `${s.n}x${s.h}x${s.w}x${s.cin}->${s.cout} k${s.k} s${s.stride} p${s.pad}`;

/**
 * The flags that select a normalization pass's WGSL variant, as its builder derives them (a
 * BatchNorm forward's mode and running update too), joined by "+": "affine+save+relu+eps".
 */
function normalizationFlags(r: NormalizationRequest): string {
  if (r.pass === "backward") return flagText(backwardSlots(r.spec).flags);
  if (r.kernel === "groupnorm") return flagText(forwardSlots(r.kernel, r.spec).flags);
  const { pass: _pass, stage: _stage, ...variant } = batchNormForwardVariant(r.spec);
  return flagText(variant);
}

/** The true flags by name and the string ones by value, joined by "+" ("plain": none). */
const flagText = (flags: Record<string, boolean | string>) =>
  Object.entries(flags).map(([k, v]) => (v === true ? k : v || "")).filter((w) => w).join("+") ||
  "plain";

/** The cache's line for a request: everything that decides which variants exist and are valid. */
export function tuneKey(r: TuneRequest): string {
  const precision = r.spec.precision ?? "f32";
  if (r.kernel === "batchnorm") {
    const { rows, features, runs } = r.spec;
    return `batchnorm ${r.pass} ${rows}x${features} R${runs} ${precision} ${normalizationFlags(r)}`;
  }
  if (r.kernel === "groupnorm") {
    const { rows, spatial, channels, groups } = r.spec.geometry;
    return `groupnorm ${r.pass} n${rows} s${spatial} c${channels} g${groups} R${r.spec.runs} ` +
      `${precision} ${normalizationFlags(r)}`;
  }
  if (r.kernel === "matmul") {
    const s = r.spec;
    const product = `${s.transA ? "T" : "N"}${s.transB ? "T" : "N"}${s.bias ? "+bias" : ""}`;
    return `matmul ${product} m${s.m} n${s.n} k${s.k} R${s.runs} ${precision}` +
      align([s.a, s.b, s.c], precision);
  }
  return `conv ${r.product} ${shapeText(r.spec.shape)} R${r.spec.runs} ${precision}` +
    align(convViews(r.product, r.spec), precision);
}

/**
 * Whether a request is worth tuning: every matmul and convolution; of a normalization, the
 * training pass only (its backward, and the forward that saves xhat for it), and of BatchNorm
 * the split design only. The probe's and eval passes' forwards (nothing saved) run on probe
 * steps only and keep the default; BatchNorm's whole design (an MLP's batch) has one thread per
 * feature and nothing to chunk.
 */
export function worthTuning(r: TuneRequest): boolean {
  if (r.kernel === "matmul" || r.kernel === "conv") return true;
  const training = r.pass === "backward" || !!r.spec.xhat;
  return training && (r.kernel === "groupnorm" || batchNormSplit(r.spec.rows));
}

/**
 * The tilings of one run: chosen ones by key (from a cache, or a tuner's), and every request
 * worth tuning ({@link worthTuning}) the kernel builders made, by key, in the order first made.
 */
export class Tilings {
  /** Every request worth tuning made through this table, by key. */
  readonly requests = new Map<string, TuneRequest>();
  /** Keys whose chosen tiling some request used. */
  readonly used = new Set<string>();

  constructor(readonly chosen: ReadonlyMap<string, TilingOverride> = new Map()) {}

  /** The tiling of a matmul product: the chosen override, or undefined (the default). */
  matmul(spec: MatmulSpec): Partial<MatmulTiling> | undefined {
    return this.#pick({ kernel: "matmul", spec });
  }

  /** The tiling of a convolution product. */
  conv(product: ConvProduct, spec: ConvSpecBase): Partial<ConvTiling> | undefined {
    return this.#pick({ kernel: "conv", product, spec });
  }

  /** The tiling of a BatchNorm pass (the default, unrecorded, where not worth tuning). */
  batchNorm(p: BatchNormPass): Partial<BatchNormTiling> | undefined {
    return this.#pick({ kernel: "batchnorm", ...p });
  }

  /** The tiling of a GroupNorm pass (the default, unrecorded, where not worth tuning). */
  groupNorm(p: GroupNormPass): Partial<GroupNormTiling> | undefined {
    return this.#pick({ kernel: "groupnorm", ...p });
  }

  #pick(r: TuneRequest): TilingOverride | undefined {
    if (!worthTuning(r)) return undefined;
    const key = tuneKey(r);
    if (!this.requests.has(key)) this.requests.set(key, r);
    const t = this.chosen.get(key);
    if (t && Object.keys(t).length) this.used.add(key);
    return t;
  }
}

/** Values a parameter steps through, in order; a neighbour is the value before or after. */
const STEPS = {
  block: [1, 2, 4, 6, 8, 12, 16],
  tn: [4, 8, 12, 16],
  wg: [8, 16, 32, 64, 128, 256],
  wgx: [1, 2, 4, 8, 16, 32, 64],
  wgy: [1, 2, 4, 8, 16, 32],
  chunk: [32, 64, 128, 256, 512, 1024],
  normWg: [32, 64, 128, 256],
};

/** The values next to `v` in `steps` (v itself need not be a step: its nearest on each side). */
function adjacent(steps: number[], v: number): number[] {
  const below = steps.filter((s) => s < v), above = steps.filter((s) => s > v);
  return [below.at(-1), above[0]].filter((s): s is number => s !== undefined);
}

const keyOf = (t: TilingOverride) => Object.keys(t).sort().map((k) => `${k}=${t[k]}`).join(" ");

/** The variants one parameter away from `t`, `fits` filtering, duplicates and `t` removed. */
function around(
  t: TilingOverride,
  changes: TilingOverride[],
  fits: (v: TilingOverride) => boolean,
): TilingOverride[] {
  const seen = new Set([keyOf(t)]);
  const out: TilingOverride[] = [];
  for (const c of changes) {
    const v = { ...t, ...c }, k = keyOf(v);
    if (!seen.has(k) && fits(v)) (seen.add(k), out.push(v));
  }
  return out;
}

/** Changes of one numeric field to its adjacent steps. */
const stepChanges = (t: TilingOverride, field: string, steps: number[]) =>
  adjacent(steps, t[field] as number).map((v) => ({ [field]: v }));

/** 1, 2, …, n. */
const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

const pow2Ceil = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(1, x)));

function matmulSpace(r: MatmulRequest, limits: TuneLimits): TuneSpace<TilingOverride> {
  const s = r.spec, d = chooseTiling(s);
  const start: TilingOverride = { ...d, vec: d.vecA || d.vecB || d.vecC };
  delete start.vecA, delete start.vecB, delete start.vecC;
  const f32 = (s.precision ?? "f32") === "f32";
  const fits = (v: TilingOverride) => {
    const { tm, tn, wgx, wgy } = v as Record<string, number>;
    return wgx * wgy <= limits.maxComputeInvocationsPerWorkgroup &&
      wgx <= limits.maxComputeWorkgroupSizeX && wgy <= limits.maxComputeWorkgroupSizeY &&
      // No workgroup wider than the block grid, no block larger than the product.
      wgx <= pow2Ceil(Math.ceil(s.n / tn)) && wgy <= pow2Ceil(Math.ceil(s.m / tm)) &&
      tm <= Math.max(4, s.m) && tn <= Math.max(4, s.n) && tm * tn <= 256;
  };
  return {
    start,
    key: keyOf,
    neighbours: (t) =>
      around(t, [
        ...stepChanges(t, "tm", STEPS.block),
        ...stepChanges(t, "tn", STEPS.block),
        ...stepChanges(t, "wgx", STEPS.wgx),
        ...stepChanges(t, "wgy", STEPS.wgy),
        { wgx: (t.wgx as number) * 2, wgy: (t.wgy as number) / 2 },
        { wgx: (t.wgx as number) / 2, wgy: (t.wgy as number) * 2 },
        ...(f32 ? [{ vec: !t.vec }] : []),
      ], (v) => Number.isInteger(v.wgy) && Number.isInteger(v.wgx) && fits(v)),
  };
}

function convSpace(r: ConvRequest, limits: TuneLimits): TuneSpace<TilingOverride> {
  const { product, spec } = r, { shape } = spec, precision = spec.precision ?? "f32";
  const views = convViews(product, spec);
  /** The builder's tiling under `override`, in the space's fields. */
  const chosen = (override: Partial<ConvTiling>): TilingOverride => {
    const d = chooseConvTiling(product, shape, spec.runs, views, override, precision);
    const t: TilingOverride = { tm: d.tm, tn: d.tn, wg: d.wg, vec: d.vecA || d.vecB };
    if (product === "backwardWeight") t.tc = d.tc;
    if (product === "forward") t.window = d.window;
    return t;
  };
  const start = chosen({});
  const f32 = precision === "f32";
  const { ow } = convOutputShape(shape);
  const cols = product === "backwardInput" ? shape.cin : shape.cout;
  const windowable = product === "forward" && shape.k > 1 && shape.stride === 1;
  const fits = (v: TilingOverride) => {
    const { tm, tn, wg, tc } = v as Record<string, number>;
    const base = wg <= limits.maxComputeInvocationsPerWorkgroup &&
      wg <= limits.maxComputeWorkgroupSizeX && tn <= Math.max(4, cols) && tm * tn <= 256;
    if (product !== "backwardWeight") return base && (!v.window || tm <= ow);
    return base && shape.cin % tc === 0 && tm % tc === 0 && tm / tc <= shape.k * shape.k;
  };
  const changes = (t: TilingOverride): TilingOverride[] => {
    const common = [
      ...stepChanges(t, "tn", STEPS.tn),
      ...stepChanges(t, "wg", STEPS.wg),
      ...(f32 ? [{ vec: !t.vec }] : []),
    ];
    if (product !== "backwardWeight") {
      return [
        ...stepChanges(t, "tm", STEPS.block),
        ...common,
      ];
    }
    // dW: taps per block (tm / tc) or channels per tap (tc, keeping the taps) change.
    const tc = t.tc as number, taps = (t.tm as number) / tc;
    const tcs = [1, 2, 3, 4, 8, 12, 16].filter((c) => shape.cin % c === 0);
    return [
      ...adjacent(oneTo(shape.k * shape.k), taps).map((j) => ({ tm: tc * j })),
      ...adjacent(tcs, tc).map((c) => ({ tc: c, tm: c * taps })),
      ...common,
    ];
  };
  // The forward's other design (direct window or implicit GEMM) is climbed from its own default:
  // the good blocks of one are not the other's.
  const starts = windowable ? [chosen({ window: !start.window })] : [];
  return { start, starts, key: keyOf, neighbours: (t) => around(t, changes(t), fits) };
}

/**
 * A normalization's space: rows (BatchNorm) or positions (GroupNorm) per chunk, and threads per
 * workgroup. A chunk is held at most the extent it chunks (a longer one is the same variant); a
 * GroupNorm chunk its builder would grow (rows·chunks past MAX_COLUMN_TERMS) is left out, and
 * the start is the default chunk grown as the builder grows it.
 */
function normalizationSpace(
  r: NormalizationRequest,
  limits: TuneLimits,
): TuneSpace<TilingOverride> {
  const bn = r.kernel === "batchnorm";
  const field = bn ? "chunkRows" : "chunkPositions";
  const defaults: Record<string, number> = bn
    ? { ...DEFAULT_BATCHNORM_TILING }
    : { ...DEFAULT_GROUPNORM_TILING };
  const extent = bn ? r.spec.rows : r.spec.geometry.spatial;
  // The chunk the builder uses for `c` (GroupNorm grows one whose sums would overflow).
  const used = (c: number) => (bn ? Math.min(c, extent) : groupNormChunk(r.spec.geometry, c));
  const summable = (c: number) => used(c) === Math.min(c, extent);
  const chunk = used(defaults[field]);
  const widest = Math.min(
    MAX_NORMALIZATION_WORKGROUP,
    limits.maxComputeInvocationsPerWorkgroup,
    limits.maxComputeWorkgroupSizeX,
  );
  const fits = (v: TilingOverride) =>
    (v.workgroup as number) <= widest && summable(v[field] as number);
  const changes = (t: TilingOverride): TilingOverride[] => [
    ...adjacent(STEPS.chunk, t[field] as number).map((c) => ({ [field]: Math.min(c, extent) })),
    ...stepChanges(t, "workgroup", STEPS.normWg),
  ];
  return {
    start: { ...defaults, [field]: chunk },
    key: keyOf,
    neighbours: (t) => around(t, changes(t), fits),
  };
}

/** The variant space of a request on a device with `limits`, its default first. */
export function tuneSpace(r: TuneRequest, limits: TuneLimits): TuneSpace<TilingOverride> {
  switch (r.kernel) {
    case "matmul":
      return matmulSpace(r, limits);
    case "conv":
      return convSpace(r, limits);
    default:
      return normalizationSpace(r, limits);
  }
}

/** The fields of a request's kernel tiling, at their default values (for their types). */
function tilingFields(r: TuneRequest): Record<string, number | boolean> {
  switch (r.kernel) {
    case "matmul":
      return { ...chooseTiling(r.spec) };
    case "conv": {
      const { product, spec } = r;
      const views = convViews(product, spec);
      return { ...chooseConvTiling(product, spec.shape, spec.runs, views, {}, spec.precision) };
    }
    case "batchnorm":
      return { ...DEFAULT_BATCHNORM_TILING };
    case "groupnorm":
      return { ...DEFAULT_GROUPNORM_TILING };
  }
}

/**
 * Why `t` is no tiling of `r`'s kernel (a field that kernel's tiling lacks, or a value of
 * another type), or undefined: a tilings cache is a file a person may edit, and a builder
 * ignores a field it does not know.
 */
export function tilingMismatch(r: TuneRequest, t: TilingOverride): string | undefined {
  const fields = tilingFields(r);
  for (const [name, value] of Object.entries(t)) {
    if (!(name in fields)) {
      return `${name} is no field of a ${r.kernel} tiling (${Object.keys(fields).join(", ")})`;
    }
    if (typeof value !== typeof fields[name]) return `${name} is a ${typeof fields[name]}`;
  }
  return undefined;
}

/**
 * A space's variant as the kernel builders take it: `vec` sets every operand's vec4 flag (the
 * builder keeps it only where the operand is aligned).
 */
export function builderTiling(t: TilingOverride): TilingOverride {
  if (!("vec" in t)) return t;
  const { vec, ...rest } = t;
  return { ...rest, vecA: vec, vecB: vec, vecC: vec };
}
