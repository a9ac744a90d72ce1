/**
 * The float64 twin of every graph op (core/graph.ts), forward and backward side by side, and
 * the one walker that runs any graph: forward in node order, backward in reverse order with
 * gradients summed where an activation feeds two consumers (a residual stream).
 *
 * @module
 */

import type { ModelLayout, Node, OpKind, ParamTensor } from "../core/graph.ts";
import {
  convGeometry,
  groupNormGeometry,
  nodeMatrix,
  nodeParams,
  poolGeometry,
} from "../core/graph.ts";
import { groupNormBackward, type GroupNormCache, groupNormForward } from "./groupnorm.ts";
import {
  batchNormBackward,
  type BatchNormCache,
  batchNormEval,
  batchNormForward,
  columnSum,
  dot,
  matmul,
  reluBackward,
  reluForward,
  softmaxCrossEntropy,
  type Vec,
} from "./ops.ts";
import { conv2dBackwardInput, conv2dBackwardWeight, conv2dForward } from "./conv.ts";
import {
  globalAvgPoolBackward,
  globalAvgPoolForward,
  maxPool2Backward,
  maxPool2Forward,
} from "./pool.ts";

/** One run's BatchNorm running statistics, every BatchNorm node concatenated (layout offsets). */
export interface RunningStats {
  mean: Float64Array;
  variance: Float64Array;
  /** Stored in units of the node's unit tensor norm (THEORY §5), or plainly. */
  mode: "weightnorm" | "plain";
}

/** Everything an op's twin may read besides its inputs. */
interface Context {
  layout: ModelLayout;
  params: ArrayLike<number>;
  rows: number;
  eps: number;
  /** Eval mode (BatchNorm from running statistics) when given. */
  stats?: RunningStats;
  labels?: ArrayLike<number>;
}

/** What a forward keeps for the backward. */
export interface Tape {
  /** Output of every node (the loss node's: [loss, correct]). */
  values: Float64Array[];
  /** BatchNorm caches by node id (training mode). */
  caches: Map<number, BatchNormCache>;
  /** GroupNorm caches by node id. */
  groupCaches: Map<number, GroupNormCache>;
  /** dlogits of the loss (training mode with labels). */
  dlogits?: Float64Array;
}

/** The float64 twin of one op: forward, and backward to input and parameter gradients. */
interface ReferenceOp {
  forward(node: Node, inputs: Float64Array[], ctx: Context, tape: Tape): Float64Array;
  backward(
    node: Node,
    dOut: Float64Array,
    inputs: Float64Array[],
    ctx: Context,
    tape: Tape,
    grad: Float64Array,
  ): (Float64Array | undefined)[];
}

/** Tensor `t` of a flat parameter vector, as a view when possible. */
export function tensor(params: ArrayLike<number>, t: ParamTensor): Float64Array {
  if (params instanceof Float64Array) return params.subarray(t.offset, t.offset + t.size);
  return Float64Array.from({ length: t.size }, (_, i) => params[t.offset + i]);
}

/** Frobenius norm of an S tensor: a BatchNorm's unit in weight-norm running statistics. */
export function tensorNorm(params: ArrayLike<number>, t: ParamTensor): number {
  const w = tensor(params, t);
  return Math.sqrt(dot(w, w));
}

/** The running-statistics unit of BatchNorm node `bn` (1 in plain mode or without a unit). */
export function statsUnit(
  layout: ModelLayout,
  params: ArrayLike<number>,
  bn: ModelLayout["batchNorms"][number],
  mode: RunningStats["mode"],
): number {
  return mode === "weightnorm" && bn.unit !== undefined
    ? tensorNorm(params, layout.sTensors[bn.unit])
    : 1;
}

const param = (ctx: Context, node: Node, role: ParamTensor["role"]) => {
  const t = nodeParams(ctx.layout, node.id)[role];
  return t && tensor(ctx.params, t);
};

const passThrough = (_n: Node, dOut: Float64Array) => [dOut, dOut];

/** Batch and input image shape of a pooling node, as the pooling twins take them. */
function poolShape(node: Node, ctx: Context): [number, number, number, number] {
  const { n, h, w, c } = poolGeometry(ctx.layout.graph, node, ctx.rows);
  return [n, h, w, c];
}

/** The twins, by op kind. */
const OPS: Partial<Record<OpKind, ReferenceOp>> = {
  linear: {
    forward(node, [x], ctx) {
      const op = node.op as Extract<Node["op"], { kind: "linear" }>;
      const w = param(ctx, node, "weight")!;
      const k = w.length / op.outputs;
      return matmul(x, w, ctx.rows, op.outputs, k, false, false, param(ctx, node, "bias"));
    },
    backward(node, dOut, [x], ctx, _tape, grad) {
      const { weight, bias } = nodeParams(ctx.layout, node.id);
      const n = weight!.shape[1], k = weight!.shape[0];
      grad.set(matmul(x, dOut, k, n, ctx.rows, true), weight!.offset);
      if (bias) grad.set(columnSum(dOut, ctx.rows, n), bias.offset);
      return [matmul(dOut, tensor(ctx.params, weight!), ctx.rows, k, n, false, true)];
    },
  },
  conv: {
    forward: (node, [x], ctx) =>
      conv2dForward(x, param(ctx, node, "weight")!, convGeometry(ctx.layout.graph, node, ctx.rows)),
    backward(node, dOut, [x], ctx, _tape, grad) {
      const { weight } = nodeParams(ctx.layout, node.id);
      const shape = convGeometry(ctx.layout.graph, node, ctx.rows);
      grad.set(conv2dBackwardWeight(x, dOut, shape), weight!.offset);
      return [conv2dBackwardInput(dOut, tensor(ctx.params, weight!), shape)];
    },
  },
  batchnorm: {
    forward(node, [x], ctx, tape) {
      const { rows, features } = nodeMatrix(node, ctx.rows);
      const gamma = param(ctx, node, "gamma"), beta = param(ctx, node, "beta");
      if (ctx.stats) {
        const bn = ctx.layout.batchNorms.find((b) => b.node === node.id)!;
        const unit = statsUnit(ctx.layout, ctx.params, bn, ctx.stats.mode);
        const at = bn.offset, end = at + bn.features;
        const mean = ctx.stats.mean.subarray(at, end), v = ctx.stats.variance.subarray(at, end);
        return batchNormEval(x, rows, features, ctx.eps, mean, v, unit, gamma, beta);
      }
      const out = batchNormForward(x, rows, features, ctx.eps, gamma, beta);
      tape.caches.set(node.id, out);
      return out.y;
    },
    backward(node, dOut, _inputs, ctx, tape, grad) {
      const { rows, features } = nodeMatrix(node, ctx.rows);
      const { gamma, beta } = nodeParams(ctx.layout, node.id);
      const bn = batchNormBackward(
        dOut,
        tape.caches.get(node.id)!,
        rows,
        features,
        gamma && tensor(ctx.params, gamma),
      );
      if (gamma) grad.set(bn.dgamma, gamma.offset);
      if (beta) grad.set(bn.dbeta, beta.offset);
      return [bn.dx];
    },
  },
  groupnorm: {
    // Statistics per example: eval mode is training mode.
    forward(node, [x], ctx, tape) {
      const geometry = groupNormGeometry(node, ctx.rows);
      const gamma = param(ctx, node, "gamma"), beta = param(ctx, node, "beta");
      const out = groupNormForward(x, geometry, ctx.eps, gamma, beta);
      tape.groupCaches.set(node.id, out);
      return out.y;
    },
    backward(node, dOut, _inputs, ctx, tape, grad) {
      const { gamma, beta } = nodeParams(ctx.layout, node.id);
      const gn = groupNormBackward(
        dOut,
        tape.groupCaches.get(node.id)!,
        groupNormGeometry(node, ctx.rows),
        gamma && tensor(ctx.params, gamma),
      );
      if (gamma) grad.set(gn.dgamma, gamma.offset);
      if (beta) grad.set(gn.dbeta, beta.offset);
      return [gn.dx];
    },
  },
  relu: {
    forward: (_node, [x]) => reluForward(x),
    // ReLU's backward needs only the sign of its output.
    backward: (node, dOut, _inputs, _ctx, tape) => [reluBackward(dOut, tape.values[node.id])],
  },
  maxpool2: {
    forward: (node, [x], ctx) => maxPool2Forward(x, ...poolShape(node, ctx)),
    backward: (node, dOut, [x], ctx) => [maxPool2Backward(dOut, x, ...poolShape(node, ctx))],
  },
  avgpool: {
    forward: (node, [x], ctx) => globalAvgPoolForward(x, ...poolShape(node, ctx)),
    backward: (node, dOut, _inputs, ctx) => [globalAvgPoolBackward(dOut, ...poolShape(node, ctx))],
  },
  add: {
    forward: (_node, [a, b]) => Float64Array.from(a, (v, i) => v + b[i]),
    backward: passThrough,
  },
  softmax_xent: {
    forward(_node, [logits], ctx, tape) {
      const classes = ctx.layout.classes;
      const labels = ctx.labels ?? new Int32Array(ctx.rows);
      const ce = softmaxCrossEntropy(logits, labels, ctx.rows, classes);
      tape.dlogits = ce.dlogits;
      return Float64Array.of(ce.loss, ce.correct);
    },
    backward: (_node, _dOut, _inputs, _ctx, tape) => [tape.dlogits],
  },
};

function op(kind: OpKind): ReferenceOp {
  const o = OPS[kind];
  if (!o) throw new Error(`reference: no float64 twin for ${kind}`);
  return o;
}

/**
 * Forward through the graph up to the loss (training mode: BatchNorm batch statistics) or up
 * to the logits (eval mode, `stats` given, or no `labels`).
 */
export function runForward(
  layout: ModelLayout,
  params: ArrayLike<number>,
  x: Vec,
  rows: number,
  eps: number,
  opts: { stats?: RunningStats; labels?: ArrayLike<number> } = {},
): Tape {
  const ctx: Context = { layout, params, rows, eps, ...opts };
  const tape: Tape = { values: [], caches: new Map(), groupCaches: new Map() };
  const last = opts.labels ? layout.graph.loss : layout.graph.logits;
  for (const node of layout.graph.nodes.slice(0, last + 1)) {
    tape.values[node.id] = node.op.kind === "input"
      ? Float64Array.from(x)
      : op(node.op.kind).forward(node, node.inputs.map((i) => tape.values[i]), ctx, tape);
  }
  return tape;
}

/** Backward of a training-mode tape (with labels): the gradient of the mean loss. */
export function runBackward(
  layout: ModelLayout,
  params: ArrayLike<number>,
  tape: Tape,
  rows: number,
  eps: number,
): Float64Array {
  const ctx: Context = { layout, params, rows, eps };
  const grad = new Float64Array(layout.size);
  const dValues: (Float64Array | undefined)[] = [];
  dValues[layout.graph.loss] = new Float64Array(1);
  for (const node of [...layout.graph.nodes].reverse()) {
    const dOut = dValues[node.id];
    if (!dOut || node.op.kind === "input") continue;
    const inputs = node.inputs.map((i) => tape.values[i]);
    const dInputs = op(node.op.kind).backward(node, dOut, inputs, ctx, tape, grad);
    node.inputs.forEach((id, k) => {
      const d = dInputs[k];
      if (!d || layout.graph.nodes[id].op.kind === "input") return;
      const prev = dValues[id];
      dValues[id] = prev ? Float64Array.from(prev, (v, i) => v + d[i]) : d;
    });
  }
  return grad;
}
