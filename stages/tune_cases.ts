/**
 * The tuner's test bed for one kernel instance: a variant is eligible only after it computes what
 * the float64 reference does, at the shape it is tuned for.
 *
 * - Each view the kernel binds gets its own buffer, laid out as the step's is (vec4-aligned or
 *   not, shared across runs or not, NaN between runs, a guard band after), with fresh random
 *   inputs and the step's flags and runs (eps per run in a RunScalars buffer).
 * - The float64 reference is computed once per instance; a variant's every output (running
 *   statistics restored first) must match it at the kernel tests' tolerances, and every element
 *   around its outputs must stay untouched.
 * - What differs per kernel (operands, reference, tolerances) is a {@link CaseDef}; the
 *   machinery ({@link TuneCase}) is one.
 *
 * @module
 */

import { type Rng } from "../core/prng.ts";
import { type Conv2dShape, convOutputShape } from "../core/conv_shape.ts";
import {
  type Dispatch,
  type Gpu,
  packRunScalars,
  poison,
  readReals,
  realBuffer,
  runDispatches,
  type RunScalarValues,
  type TensorView,
  uploadBuffer,
  uploadReals,
} from "../shaders/gpu.ts";
import {
  channelSumsAtol,
  encodeReals,
  heldReals,
  type Precision,
  randomReals,
  type Reals,
} from "../shaders/precision.ts";
import { matmulKernel, type MatmulSpec } from "../shaders/matmul.ts";
import { CONV_OPERANDS } from "../shaders/conv2d.ts";
import { conv2dForwardKernel } from "../shaders/conv2d_forward.ts";
import { conv2dBackwardInputKernel } from "../shaders/conv2d_backward_input.ts";
import { conv2dBackwardWeightKernel } from "../shaders/conv2d_backward_weight.ts";
import type { ConvProduct } from "../shaders/conv2d_tiling.ts";
import {
  batchNormBackwardKernel,
  type BatchNormBackwardSpec,
  batchNormForwardKernel,
  type BatchNormForwardSpec,
} from "../shaders/batchnorm.ts";
import {
  groupNormBackwardKernel,
  type GroupNormBackwardSpec,
  groupNormForwardKernel,
  type GroupNormForwardSpec,
} from "../shaders/groupnorm.ts";
import {
  type ConvRequest,
  type NormalizationRequest,
  type TilingOverride,
  type TuneRequest,
  vec4Aligned,
} from "../shaders/tilings.ts";
import {
  batchNormBackward,
  batchNormForward,
  matmul,
  reluBackward,
  reluForward,
  updateRunningStats,
} from "../reference/ops.ts";
import { groupNormBackward, groupNormForward } from "../reference/groupnorm.ts";
import { conv2dBackwardInput, conv2dBackwardWeight, conv2dForward } from "../reference/conv.ts";

/** The dispatches of request `r` with `tiling` (builder form), on `r`'s views. */
export function buildVariant(gpu: Gpu, r: TuneRequest, tiling: TilingOverride): Dispatch[] {
  switch (r.kernel) {
    case "matmul":
      return [matmulKernel(gpu, r.spec, tiling)];
    case "conv":
      return [CONV_BUILDERS[r.product](gpu, r.spec as never, tiling)];
    case "batchnorm":
      return r.pass === "forward"
        ? batchNormForwardKernel(gpu, r.spec, tiling)
        : batchNormBackwardKernel(gpu, r.spec, tiling);
    case "groupnorm":
      return r.pass === "forward"
        ? groupNormForwardKernel(gpu, r.spec, tiling)
        : groupNormBackwardKernel(gpu, r.spec, tiling);
  }
}

const CONV_BUILDERS: Record<ConvProduct, (gpu: Gpu, spec: never, t: TilingOverride) => Dispatch> = {
  forward: conv2dForwardKernel,
  backwardInput: conv2dBackwardInputKernel,
  backwardWeight: conv2dBackwardWeightKernel,
};

/** One tensor a kernel binds, as a case mirrors it. */
interface OperandSpec {
  /** Where the spec holds its view: a field ("x") or a field of a field ("running.mean"). */
  path: string;
  /** Elements per run. */
  length: number;
  /** An input's values: uniform in [lo, hi) (absent: an output only). */
  range?: readonly [number, number];
  /** Written by the kernel (an input too, the running statistics: restored before each check). */
  output?: boolean;
}

/** What one run's output must hold: |got - want| <= atol + rtol·|want| everywhere. */
interface Expected {
  want: Float64Array;
  /** One bound, or one per element. */
  atol: number | Float64Array;
  rtol: number;
}

/**
 * What a kind of request contributes to its case: the tensors its kernel binds (those the step's
 * spec lacks are left out), the RunScalars records of those that read eps, and the float64
 * outputs of one run from that run's inputs by path, at the kernel tests' tolerances.
 */
interface CaseDef {
  operands: OperandSpec[];
  scalars?: RunScalarValues[];
  reference(inputs: Record<string, Float64Array>, run: number): Record<string, Expected>;
}

/** Values of most inputs; others as the kernel tests draw them (positive scales, variances). */
const SIGNED = [-1, 1] as const;
const SCALE = [0.5, 2] as const;

/** Elements past the last run of every operand: a variant writing past an output is caught there. */
const GUARD = 16;

const abs = (v: Float64Array) => v.map(Math.abs);
/** Largest |v[i]| (0 for none). */
function maxAbs(v: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i]));
  return m;
}

/** Relative tolerance of df64 and f64 against Σ|a·b| (the kernel tests' DF64_TOL). */
const WIDE_TOL = 1e-12;

/**
 * A product's case (matmul, convolution): `inputs` uniform in [-1, 1), `output` of depth-`depth`
 * sums, expected to atol 1e-5·√depth + 1e-4 relative in float32, to WIDE_TOL of Σ|a·b| wider.
 */
function productCase(
  precision: Precision,
  inputs: [string, number][],
  output: [string, number],
  depth: number,
  fn: (inputs: Float64Array[]) => Float64Array,
): CaseDef {
  return {
    operands: [
      ...inputs.map(([path, length]) => ({ path, length, range: SIGNED })),
      { path: output[0], length: output[1], output: true },
    ],
    reference(values) {
      const args = inputs.map(([path]) => values[path]).filter((v) => v !== undefined);
      const want = fn(args);
      const expected: Expected = precision === "f32"
        ? { want, atol: 1e-5 * Math.sqrt(depth), rtol: 1e-4 }
        : { want, atol: fn(args.map(abs)).map((s) => WIDE_TOL * (s || 1)), rtol: 0 };
      return { [output[0]]: expected };
    },
  };
}

function matmulCase(s: MatmulSpec, precision: Precision): CaseDef {
  const { m, n, k, transA = false, transB = false } = s;
  return productCase(
    precision,
    [["a", m * k], ["b", k * n], ["bias", n]],
    ["c", m * n],
    k,
    ([a, b, bias]) => matmul(a, b, m, n, k, transA, transB, bias),
  );
}

function convCase(r: ConvRequest, precision: Precision): CaseDef {
  const s: Conv2dShape = r.spec.shape, { oh, ow } = convOutputShape(s);
  const x = s.n * s.h * s.w * s.cin, y = s.n * oh * ow * s.cout, w = s.k * s.k * s.cin * s.cout;
  const [a, b, c] = CONV_OPERANDS[r.product];
  const { fn, lengths, depth } = {
    forward: { fn: conv2dForward, lengths: [x, w, y], depth: s.k * s.k * s.cin },
    backwardInput: { fn: conv2dBackwardInput, lengths: [y, w, x], depth: s.k * s.k * s.cout },
    backwardWeight: { fn: conv2dBackwardWeight, lengths: [x, y, w], depth: s.n * oh * ow },
  }[r.product];
  return productCase(
    precision,
    [[a, lengths[0]], [b, lengths[1]]],
    [c, lengths[2]],
    depth,
    ([p, q]) => fn(p, q, s),
  );
}

/** rtol, and atol as a fraction of a scale of the data. */
interface Tol {
  rtol: number;
  atol: number;
}

/**
 * The normalization kernel tests' tolerances (shaders/batchnorm_test.ts, groupnorm_test.ts),
 * float32 and the wider precisions (df64, f64).
 */
const NORM_TOL: Record<NormalizationRequest["kernel"], { f32: Tol; wide: Tol }> = {
  batchnorm: { f32: { rtol: 1e-4, atol: 1e-5 }, wide: { rtol: 1e-12, atol: 1e-12 } },
  groupnorm: { f32: { rtol: 1e-5, atol: 1e-5 }, wide: { rtol: 1e-12, atol: 1e-12 } },
};

/** `want` to rtol, and atol times max(max|want|, `scale`) (the kernel tests' `close`). */
const near = (tol: Tol, want: Float64Array, scale = 0): Expected => ({
  want,
  rtol: tol.rtol,
  atol: tol.atol * Math.max(maxAbs(want), scale) + 1e-30,
});

/** eps and eps_next of a case's runs: distinct per run and field, as run B's differ from A's. */
const CASE_EPS = { eps: [1e-5, 1e-2, 0.3], eps_next: [0.5, 2e-3, 1e-4] };

/** The RunScalars of a case's `runs` (eps and eps_next; nothing else is read) and its eps. */
function caseScalars(precision: Precision, runs: number, field: "eps" | "eps_next") {
  const of = (f: keyof typeof CASE_EPS) =>
    Array.from({ length: runs }, (_, r) => CASE_EPS[f][r % CASE_EPS[f].length]);
  const [eps, epsNext] = [of("eps"), of("eps_next")];
  const zero = { lrS: 0, wdS: 0, shrinkS: 0, lrO: 0, wdO: 0, shrinkO: 0, momentum: 0, perturb: 0 };
  const scalars: RunScalarValues[] = eps.map((e, r) => ({
    ...zero,
    eps: e,
    epsNext: epsNext[r],
    rescale: 1,
    seed: 0,
    step: 0,
  }));
  return { scalars, eps: heldReals(precision, field === "eps" ? eps : epsNext) };
}

/**
 * The forward's input x (shifted from 0: the variance's cancellation shows) and affine
 * parameters, and the outputs y, xhat and invStd (`statistics` of them a run).
 */
const forwardOperands = (elements: number, channels: number, statistics: number) => [
  { path: "x", length: elements, range: [-1, 3] as const },
  { path: "gamma", length: channels, range: SCALE },
  { path: "beta", length: channels, range: SIGNED },
  { path: "y", length: elements, output: true },
  { path: "xhat", length: elements, output: true },
  { path: "invStd", length: statistics, output: true },
];

/** The backward's inputs as a forward leaves them (relu(y) masks dy), and its outputs. */
const backwardOperands = (elements: number, channels: number, statistics: number) => [
  { path: "dy", length: elements, range: SIGNED },
  { path: "xhat", length: elements, range: [-2, 2] as const },
  { path: "invStd", length: statistics, range: SCALE },
  { path: "gamma", length: channels, range: SCALE },
  { path: "y", length: elements, range: SIGNED },
  { path: "dx", length: elements, output: true },
  { path: "dgamma", length: channels, output: true },
  { path: "dbeta", length: channels, output: true },
];

/** No statistics the backward reads (the references take them in their cache). */
const NONE = new Float64Array();

function batchNormForwardCase(s: BatchNormForwardSpec, precision: Precision): CaseDef {
  const { rows, features, runs, running } = s, tol = NORM_TOL.batchnorm[wide(precision)];
  const update = s.mode === "train" && !!running?.update;
  const { scalars, eps } = caseScalars(precision, runs, s.epsField);
  const momentum = heldReals(precision, [running?.momentum ?? 0])[0];
  return {
    operands: [
      ...forwardOperands(rows * features, features, features),
      // Read and updated: a variant must leave exactly the reference's update.
      ...(update
        ? [
          { path: "running.mean", length: features, range: [-0.5, 0.5] as const, output: true },
          { path: "running.var", length: features, range: [0.05, 2] as const, output: true },
          { path: "running.unit", length: 1, range: [0.2, 50] as const },
        ]
        : []),
    ],
    scalars,
    reference(v, r) {
      const { x, gamma, beta } = v;
      const ref = batchNormForward(x, rows, features, eps[r], gamma, beta);
      // xhat = (x - mean)·invStd: an input's rounding moves it by ulp(x)·invStd, however small.
      const cond = maxAbs(x) * maxAbs(ref.invStd);
      const out: Record<string, Expected> = {
        y: near(tol, s.relu ? reluForward(ref.y) : ref.y, cond * (gamma ? maxAbs(gamma) : 1)),
        xhat: near(tol, ref.xhat, cond),
        invStd: near(tol, ref.invStd),
      };
      if (update) {
        const unit = v["running.unit"] ? Math.sqrt(v["running.unit"][0]) : 1;
        const mean = Float64Array.from(v["running.mean"]);
        const variance = Float64Array.from(v["running.var"]);
        updateRunningStats(mean, variance, ref, rows, momentum, unit);
        // (1 - m)·mean_old + m·mean may cancel; each term's rounding bounds the error.
        const terms = maxAbs(v["running.mean"]) + maxAbs(x) / unit;
        out["running.mean"] = near(tol, mean, terms);
        out["running.var"] = near(tol, variance);
      }
      return out;
    },
  };
}

function batchNormBackwardCase(s: BatchNormBackwardSpec, precision: Precision): CaseDef {
  const { rows, features } = s, tol = NORM_TOL.batchnorm[wide(precision)];
  return {
    operands: backwardOperands(rows * features, features, features),
    reference(v) {
      const { xhat, invStd, gamma } = v;
      const dy = s.y ? reluBackward(v.dy, v.y) : v.dy;
      const cache = { xhat, invStd, mean: NONE, variance: NONE };
      const ref = batchNormBackward(dy, cache, rows, features, gamma);
      // dx's bracket cancels: its error is a few roundings of the terms, gamma·invStd·dy.
      const gi = gamma ? invStd.map((i, j) => i * gamma[j]) : invStd;
      return {
        dx: near(tol, ref.dx, maxAbs(gi) * maxAbs(dy)),
        ...affineGradients(tol, precision, ref, dy, xhat, features),
      };
    },
  };
}

function groupNormForwardCase(s: GroupNormForwardSpec, precision: Precision): CaseDef {
  const g = s.geometry, tol = NORM_TOL.groupnorm[wide(precision)];
  const { scalars, eps } = caseScalars(precision, s.runs, s.epsField);
  return {
    operands: forwardOperands(g.rows * g.spatial * g.channels, g.channels, g.rows * g.groups),
    scalars,
    reference(v, r) {
      const { x, gamma, beta } = v;
      const ref = groupNormForward(x, g, eps[r], gamma, beta);
      const cond = maxAbs(x) * maxAbs(ref.invStd);
      return {
        y: near(tol, s.relu ? reluForward(ref.y) : ref.y, cond * (gamma ? maxAbs(gamma) : 1)),
        xhat: near(tol, ref.xhat, cond),
        invStd: near(tol, ref.invStd),
      };
    },
  };
}

function groupNormBackwardCase(s: GroupNormBackwardSpec, precision: Precision): CaseDef {
  const g = s.geometry, tol = NORM_TOL.groupnorm[wide(precision)], C = g.channels;
  return {
    operands: backwardOperands(g.rows * g.spatial * C, C, g.rows * g.groups),
    reference(v) {
      const { xhat, invStd, gamma } = v;
      const dy = s.y ? reluBackward(v.dy, v.y) : v.dy;
      const ref = groupNormBackward(dy, { xhat, mean: NONE, invStd }, g, gamma);
      // dx cancels: its error is a few roundings of its terms, invStd·dh·max(1, |xhat|).
      const terms = maxAbs(invStd) * maxAbs(dy) * (gamma ? maxAbs(gamma) : 1) *
        Math.max(1, maxAbs(xhat));
      return {
        dx: near(tol, ref.dx, terms),
        ...affineGradients(tol, precision, ref, dy, xhat, C),
      };
    },
  };
}

/**
 * dgamma = Σ dy·xhat and dbeta = Σ dy per channel, to rtol and a few roundings of their
 * channel's Σ|term| (channelSumsAtol): random signs make that far larger than the sum.
 */
function affineGradients(
  tol: Tol,
  precision: Precision,
  ref: { dgamma: Float64Array; dbeta: Float64Array },
  dy: Float64Array,
  xhat: Float64Array,
  channels: number,
): Record<"dgamma" | "dbeta", Expected> {
  const atol = (term: (k: number) => number) =>
    channelSumsAtol(precision, dy.length, channels, term);
  return {
    dgamma: { want: ref.dgamma, rtol: tol.rtol, atol: atol((k) => dy[k] * xhat[k]) },
    dbeta: { want: ref.dbeta, rtol: tol.rtol, atol: atol((k) => dy[k]) },
  };
}

const wide = (p: Precision) => (p === "f32" ? "f32" : "wide");

/** The case of a request: what its kernel binds, and its float64 reference. */
function caseOf(r: TuneRequest, precision: Precision): CaseDef {
  switch (r.kernel) {
    case "matmul":
      return matmulCase(r.spec, precision);
    case "conv":
      return convCase(r, precision);
    case "batchnorm":
      return r.pass === "forward"
        ? batchNormForwardCase(r.spec, precision)
        : batchNormBackwardCase(r.spec, precision);
    case "groupnorm":
      return r.pass === "forward"
        ? groupNormForwardCase(r.spec, precision)
        : groupNormBackwardCase(r.spec, precision);
  }
}

/** The view a spec holds at `path` ("x", "running.mean"), if any. */
function viewAt(spec: object, path: string): TensorView | undefined {
  const at = path.split(".").reduce<unknown>(
    (o, k) => (o as Record<string, unknown> | undefined)?.[k],
    spec,
  );
  return at as TensorView | undefined;
}

/** `spec` with each value of `values` put at its path (a copy: the step's spec is untouched). */
function withValues<T extends object>(spec: T, values: Record<string, unknown>): T {
  const out: Record<string, unknown> = { ...spec as Record<string, unknown> };
  for (const [path, value] of Object.entries(values)) {
    const [head, field] = path.split(".");
    out[head] = field === undefined ? value : { ...(out[head] as object), [field]: value };
  }
  return out as T;
}

/** One operand of a case: its view, what it holds per run (inputs), and the whole buffer. */
interface Operand {
  spec: OperandSpec;
  view: TensorView;
  /** Per run, the values uploaded (inputs). */
  runs: Float64Array[];
  /** The buffer's contents as uploaded (inputs; an output too is restored from it). */
  host?: Float64Array;
}

/**
 * A buffer laid out like `like` for `o`: vec4-aligned or not as `like` is (float32), shared
 * across runs when `like` is; an input's random values, NaN wherever no run's values are.
 */
function mirror(
  gpu: Gpu,
  precision: Precision,
  like: TensorView,
  o: OperandSpec,
  runs: number,
  rng: Rng,
): Operand {
  const aligned = precision !== "f32" || vec4Aligned(like);
  const offset = aligned ? 0 : 1, { length, range } = o;
  const runStride = like.runStride === 0 ? 0 : Math.ceil(length / 4) * 4;
  const elements = offset + (runs - 1) * runStride + length + GUARD;
  const view = (buffer: GPUBuffer) => ({ buffer, offset, runStride });
  if (!range) {
    return { spec: o, view: view(realBuffer(gpu, precision, elements, o.path)), runs: [] };
  }
  const [lo, hi] = range, host = new Float64Array(elements).fill(NaN);
  const values: Float64Array[] = [];
  for (let r = 0; r < runs; r++) {
    if (r > 0 && runStride === 0) {
      values.push(values[0]);
      continue;
    }
    // What the buffer holds exactly (float32, a df64 pair, float64): the reference's input.
    values.push(randomReals(rng, precision, length, lo, hi));
    host.set(values[r], offset + r * runStride);
  }
  const buffer = uploadReals(gpu, precision, host, o.path);
  return { spec: o, view: view(buffer), runs: values, host };
}

/** Why `got` (an output's buffer) differs from `want` per run, or writes outside the output. */
function mismatch(o: Operand, got: Reals, want: Expected[]): string | undefined {
  const { view, spec } = o, written = new Uint8Array(got.length);
  for (let r = 0; r < want.length; r++) {
    const start = view.offset + r * view.runStride, { atol, rtol } = want[r];
    for (let i = 0; i < spec.length; i++) {
      const g = got[start + i], w = want[r].want[i];
      const bound = (typeof atol === "number" ? atol : atol[i]) + rtol * Math.abs(w);
      if (!(Math.abs(g - w) <= bound)) {
        return `wrong result: ${spec.path} run ${r} element ${i} is ${g}, expected ${w}`;
      }
      written[start + i] = 1;
    }
  }
  const stray = got.findIndex((v, i) => !written[i] && !Number.isNaN(v));
  return stray < 0 ? undefined : `wrong result: wrote outside ${spec.path} at element ${stray}`;
}

/**
 * One kernel instance's fresh inputs, each view the kernel binds in its own buffer laid out as
 * the step's is, and the check of a variant's outputs against the float64 reference (computed
 * once, on first use).
 */
export class TuneCase {
  /** The request on the case's buffers: what a variant is built on ({@link buildVariant}). */
  readonly request: TuneRequest;
  readonly precision: Precision;
  readonly #operands: Operand[];
  readonly #scalars?: GPUBuffer;
  readonly #def: CaseDef;
  #want?: Record<string, Expected>[];

  /** The case of `step` (a request of the step), its inputs drawn from `rng`. */
  constructor(readonly gpu: Gpu, step: TuneRequest, rng: Rng) {
    const runs = step.spec.runs;
    this.precision = step.spec.precision ?? "f32";
    this.#def = caseOf(step, this.precision);
    this.#operands = this.#def.operands.flatMap((o) => {
      const like = viewAt(step.spec, o.path);
      return like ? [mirror(gpu, this.precision, like, o, runs, rng)] : [];
    });
    const values: Record<string, unknown> = Object.fromEntries(
      this.#operands.map((o) => [o.spec.path, o.view]),
    );
    if (this.#def.scalars) {
      const words = packRunScalars(this.precision, this.#def.scalars);
      values.scalars = this.#scalars = uploadBuffer(gpu, words, "run scalars");
    }
    this.request = { ...step, spec: withValues(step.spec, values) } as TuneRequest;
  }

  /** The expected outputs of every run, by path, computed once. */
  #reference(): Record<string, Expected>[] {
    this.#want ??= Array.from({ length: this.request.spec.runs }, (_, r) => {
      const inputs = this.#operands.filter((o) => o.spec.range);
      return this.#def.reference(
        Object.fromEntries(inputs.map((o) => [o.spec.path, o.runs[r]])),
        r,
      );
    });
    return this.#want;
  }

  /** Why the outputs of `dispatches` are wrong, or undefined when they match the reference. */
  async verify(dispatches: Dispatch[]): Promise<string | undefined> {
    const { gpu, precision } = this;
    const outputs = this.#operands.filter((o) => o.spec.output);
    for (const o of outputs) {
      poison(gpu, o.view.buffer);
      if (o.host) gpu.device.queue.writeBuffer(o.view.buffer, 0, encodeReals(precision, o.host));
    }
    runDispatches(gpu, dispatches);
    const want = this.#reference();
    for (const o of outputs) {
      const got = await readReals(gpu, precision, o.view.buffer);
      const wrong = mismatch(o, got, want.map((w) => w[o.spec.path]));
      if (wrong) return wrong;
    }
    return undefined;
  }

  /** Frees the case's buffers. */
  dispose(): void {
    for (const o of this.#operands) o.view.buffer.destroy();
    this.#scalars?.destroy();
  }
}
