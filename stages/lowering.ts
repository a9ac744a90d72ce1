/**
 * The GPU lowering of every graph op (core/graph.ts): its forward and backward dispatches over
 * R runs, and the one walker that records any graph as a pass at a fixed row count. Gradients
 * of an activation that feeds two consumers (a residual stream) are summed by an add kernel;
 * an addition's backward passes its output gradient on without a copy.
 *
 * @module
 */

import type { ModelLayout, Node, OpKind, ParamTensor } from "../core/graph.ts";
import {
  convGeometry,
  groupNormGeometry,
  nodeMatrix,
  nodeParams,
  NORMALIZATIONS,
  poolGeometry,
  shapeSize,
} from "../core/graph.ts";
import { groupNormBackwardKernel, groupNormForwardKernel } from "../shaders/groupnorm.ts";
import type {
  NormalizationBackwardViews,
  NormalizationForwardViews,
} from "../shaders/normalization.ts";
import { type Dispatch, type Gpu, realBuffer, type TensorView } from "../shaders/gpu.ts";
import type { Precision } from "../shaders/precision.ts";
import { matmulKernel, type MatmulSpec } from "../shaders/matmul.ts";
import type { Tilings } from "../shaders/tilings.ts";
import {
  batchNormBackwardKernel,
  batchNormForwardKernel,
  type BatchNormForwardSpec,
} from "../shaders/batchnorm.ts";
import { reluBackwardKernel, reluForwardKernel } from "../shaders/relu.ts";
import { softmaxCrossEntropyKernel } from "../shaders/softmax_xent.ts";
import { columnSumKernel } from "../shaders/reduce.ts";
import { addKernel } from "../shaders/add.ts";
import { conv2dForwardKernel } from "../shaders/conv2d_forward.ts";
import { conv2dBackwardInputKernel } from "../shaders/conv2d_backward_input.ts";
import { conv2dBackwardWeightKernel } from "../shaders/conv2d_backward_weight.ts";
import {
  globalAvgPoolBackwardKernel,
  globalAvgPoolForwardKernel,
  maxPool2BackwardKernel,
  maxPool2ForwardKernel,
} from "../shaders/pool.ts";

/** What a pass computes: a training step (forward, loss, backward), or logits only. */
export type PassMode = "train" | "probe" | "eval";

/** The buffers a pass reads and writes besides its own activations. */
export interface PassBuffers {
  /** The kernels' arithmetic; every activation of the pass is a real of it. */
  precision: Precision;
  layout: ModelLayout;
  runs: number;
  /** Input batch [rows, inputSize], shared by all runs. */
  input: GPUBuffer;
  /** Labels (train mode). */
  labels: GPUBuffer;
  /** Run-stacked parameters and their gradients (layout.size per run). */
  params: GPUBuffer;
  grads: GPUBuffer;
  /** array<RunScalars>. */
  scalars: GPUBuffer;
  /** Loss and correct count of each run (train mode). */
  lossStats: TensorView;
  /** Running mean and variance (layout.statsSize per run). */
  runningMean: GPUBuffer;
  runningVar: GPUBuffer;
  bnMomentum: number;
  /** Tuned tilings of the matmul, convolution and normalization kernels (default without). */
  tilings?: Tilings;
  /** Per run ||t||² of S tensor `i` (weight-norm running statistics), or undefined (plain). */
  unitNorm2?: (i: number) => TensorView;
}

/** One recorded pass. */
export interface Pass {
  rows: number;
  forward: Dispatch[];
  backward: Dispatch[];
  logits: TensorView;
}

/** The walker's state while one pass is recorded, as an op's lowering sees it. */
interface Lowering {
  gpu: Gpu;
  b: PassBuffers;
  mode: PassMode;
  rows: number;
  /** Output activation of a node. */
  act(id: number): TensorView;
  /** A fresh run-stacked tensor of `elements` per run. */
  alloc(elements: number, label: string): TensorView;
  param(t: ParamTensor): TensorView;
  grad(t: ParamTensor): TensorView;
  /** Whether the gradient of node `id`'s output is needed (not for the input). */
  needsGrad(id: number): boolean;
  /** Per-node tensors the forward saves for the backward. */
  saved: Map<number, Record<string, TensorView>>;
  /** Normalization nodes whose kernels apply the ReLU that consumes them ({@link reluFusions}). */
  reluFused: Set<number>;
}

/** The forward and backward of one op. `dx(k)` is where input k's gradient is written. */
interface GpuOp {
  forward(node: Node, l: Lowering): Dispatch[];
  backward(
    node: Node,
    l: Lowering,
    dOut: TensorView,
    dx: (k: number) => TensorView,
    pass: (k: number, view: TensorView) => void,
  ): Dispatch[];
}

const runView = (buffer: GPUBuffer, runStride: number, offset = 0): TensorView => ({
  buffer,
  offset,
  runStride,
});

/** Runs, batch and input image shape of a pooling node, as the pooling kernels take them. */
const poolShape = (node: Node, l: Lowering) => ({
  runs: l.b.runs,
  ...poolGeometry(l.b.layout.graph, node, l.rows),
});

/**
 * What every normalization's forward binds: input, output (relu(y) when fused), gamma and beta,
 * eps (of this step in a training pass, of the next in a probe), and in a training pass xhat and
 * the `statistics` values of 1/std, saved for the backward.
 */
function normalizationForward(
  node: Node,
  l: Lowering,
  statistics: number,
): NormalizationForwardViews {
  const { gamma, beta } = nodeParams(l.b.layout, node.id);
  const train = l.mode === "train";
  const save = train
    ? {
      xhat: l.alloc(l.rows * shapeSize(node.shape), `${node.name} xhat`),
      invStd: l.alloc(statistics, `${node.name} invstd`),
    }
    : undefined;
  if (save) l.saved.set(node.id, save);
  return {
    precision: l.b.precision,
    runs: l.b.runs,
    x: l.act(node.inputs[0]),
    y: l.act(node.id),
    relu: l.reluFused.has(node.id),
    xhat: save?.xhat,
    invStd: save?.invStd,
    gamma: gamma && l.param(gamma),
    beta: beta && l.param(beta),
    scalars: l.b.scalars,
    epsField: train ? "eps" : "eps_next",
  };
}

/** What every normalization's backward binds: the forward's saved tensors and the gradients. */
function normalizationBackward(
  node: Node,
  l: Lowering,
  dOut: TensorView,
  dx: (k: number) => TensorView,
): NormalizationBackwardViews {
  const { gamma, beta } = nodeParams(l.b.layout, node.id);
  const save = l.saved.get(node.id)!;
  return {
    precision: l.b.precision,
    runs: l.b.runs,
    dy: dOut,
    xhat: save.xhat,
    invStd: save.invStd,
    gamma: gamma && l.param(gamma),
    // Fused: dOut is the ReLU output's gradient, masked by that output (this node's act).
    y: l.reluFused.has(node.id) ? l.act(node.id) : undefined,
    dx: dx(0),
    dgamma: gamma && l.grad(gamma),
    dbeta: beta && l.grad(beta),
  };
}

/** A matmul product at its tuned tiling. */
const matmul = (l: Lowering, spec: MatmulSpec) =>
  matmulKernel(l.gpu, spec, l.b.tilings?.matmul(spec));

const OPS: Partial<Record<OpKind, GpuOp>> = {
  linear: {
    forward(node, l) {
      const { weight, bias } = nodeParams(l.b.layout, node.id);
      return [matmul(l, {
        precision: l.b.precision,
        runs: l.b.runs,
        m: l.rows,
        n: weight!.shape[1],
        k: weight!.shape[0],
        a: l.act(node.inputs[0]),
        b: l.param(weight!),
        c: l.act(node.id),
        bias: bias && l.param(bias),
      })];
    },
    backward(node, l, dOut, dx) {
      const { weight, bias } = nodeParams(l.b.layout, node.id);
      const [k, n] = weight!.shape, runs = l.b.runs, input = node.inputs[0];
      return [
        matmul(l, {
          precision: l.b.precision,
          runs,
          m: k,
          n,
          k: l.rows,
          transA: true,
          a: l.act(input),
          b: dOut,
          c: l.grad(weight!),
        }),
        ...(bias
          ? [columnSumKernel(l.gpu, {
            precision: l.b.precision,
            runs,
            rows: l.rows,
            cols: n,
            a: dOut,
            out: l.grad(bias),
          })]
          : []),
        ...(l.needsGrad(input)
          ? [matmul(l, {
            precision: l.b.precision,
            runs,
            m: l.rows,
            n: k,
            k: n,
            transB: true,
            a: dOut,
            b: l.param(weight!),
            c: dx(0),
          })]
          : []),
      ];
    },
  },
  conv: {
    forward(node, l) {
      const { weight } = nodeParams(l.b.layout, node.id);
      const spec = {
        precision: l.b.precision,
        runs: l.b.runs,
        shape: convGeometry(l.b.layout.graph, node, l.rows),
        x: l.act(node.inputs[0]),
        w: l.param(weight!),
        y: l.act(node.id),
      };
      const tiling = l.b.tilings?.conv("forward", spec);
      return [conv2dForwardKernel(l.gpu, spec, tiling)];
    },
    backward(node, l, dOut, dx) {
      const { weight } = nodeParams(l.b.layout, node.id);
      const shape = convGeometry(l.b.layout.graph, node, l.rows);
      const input = node.inputs[0], base = { precision: l.b.precision, runs: l.b.runs, shape };
      const dW = { ...base, x: l.act(input), dy: dOut, dw: l.grad(weight!) };
      const tilings = l.b.tilings;
      const out = [conv2dBackwardWeightKernel(l.gpu, dW, tilings?.conv("backwardWeight", dW))];
      if (l.needsGrad(input)) {
        const dX = { ...base, dy: dOut, w: l.param(weight!), dx: dx(0) };
        const tiling = tilings?.conv("backwardInput", dX);
        out.push(conv2dBackwardInputKernel(l.gpu, dX, tiling));
      }
      return out;
    },
  },
  batchnorm: {
    forward(node, l) {
      const { layout } = l.b;
      const bn = layout.batchNorms.find((s) => s.node === node.id)!;
      const { rows, features } = nodeMatrix(node, l.rows);
      const spec: BatchNormForwardSpec = {
        ...normalizationForward(node, l, features),
        rows,
        features,
        mode: l.mode === "eval" ? "eval" : "train",
        running: {
          mean: runView(l.b.runningMean, layout.statsSize, bn.offset),
          var: runView(l.b.runningVar, layout.statsSize, bn.offset),
          momentum: l.b.bnMomentum,
          unit: bn.unit !== undefined ? l.b.unitNorm2?.(bn.unit) : undefined,
          update: l.mode === "train",
        },
      };
      const tiling = l.b.tilings?.batchNorm({ pass: "forward", spec });
      return batchNormForwardKernel(l.gpu, spec, tiling);
    },
    backward(node, l, dOut, dx) {
      const spec = { ...normalizationBackward(node, l, dOut, dx), ...nodeMatrix(node, l.rows) };
      const tiling = l.b.tilings?.batchNorm({ pass: "backward", spec });
      return batchNormBackwardKernel(l.gpu, spec, tiling);
    },
  },
  groupnorm: {
    // Statistics per example: the probe and eval passes compute as training does, unsaved.
    forward(node, l) {
      const geometry = groupNormGeometry(node, l.rows);
      const spec = { ...normalizationForward(node, l, l.rows * geometry.groups), geometry };
      const tiling = l.b.tilings?.groupNorm({ pass: "forward", spec });
      return groupNormForwardKernel(l.gpu, spec, tiling);
    },
    backward(node, l, dOut, dx) {
      const spec = {
        ...normalizationBackward(node, l, dOut, dx),
        geometry: groupNormGeometry(node, l.rows),
      };
      const tiling = l.b.tilings?.groupNorm({ pass: "backward", spec });
      return groupNormBackwardKernel(l.gpu, spec, tiling);
    },
  },
  relu: {
    forward: (node, l) => [reluForwardKernel(l.gpu, {
      precision: l.b.precision,
      runs: l.b.runs,
      count: l.rows * shapeSize(node.shape),
      x: l.act(node.inputs[0]),
      y: l.act(node.id),
    })],
    backward: (node, l, dOut, dx) => [reluBackwardKernel(l.gpu, {
      precision: l.b.precision,
      runs: l.b.runs,
      count: l.rows * shapeSize(node.shape),
      dy: dOut,
      y: l.act(node.id),
      dx: dx(0),
    })],
  },
  maxpool2: {
    forward: (node, l) => [maxPool2ForwardKernel(l.gpu, {
      precision: l.b.precision,
      ...poolShape(node, l),
      x: l.act(node.inputs[0]),
      y: l.act(node.id),
    })],
    backward: (node, l, dOut, dx) => [maxPool2BackwardKernel(l.gpu, {
      precision: l.b.precision,
      ...poolShape(node, l),
      dy: dOut,
      x: l.act(node.inputs[0]),
      dx: dx(0),
    })],
  },
  avgpool: {
    forward: (node, l) => [globalAvgPoolForwardKernel(l.gpu, {
      precision: l.b.precision,
      ...poolShape(node, l),
      x: l.act(node.inputs[0]),
      y: l.act(node.id),
    })],
    backward: (node, l, dOut, dx) => [globalAvgPoolBackwardKernel(l.gpu, {
      precision: l.b.precision,
      ...poolShape(node, l),
      dy: dOut,
      dx: dx(0),
    })],
  },
  add: {
    forward: (node, l) => [addKernel(l.gpu, {
      precision: l.b.precision,
      runs: l.b.runs,
      count: l.rows * shapeSize(node.shape),
      a: l.act(node.inputs[0]),
      b: l.act(node.inputs[1]),
      out: l.act(node.id),
    })],
    backward(_node, _l, dOut, _dx, pass) {
      pass(0, dOut);
      pass(1, dOut);
      return [];
    },
  },
  softmax_xent: {
    // The forward writes dlogits, the loss's whole backward, as the logits' gradient.
    forward: (node, l) => [softmaxCrossEntropyKernel(l.gpu, {
      precision: l.b.precision,
      runs: l.b.runs,
      rows: l.rows,
      classes: l.b.layout.classes,
      logits: l.act(node.inputs[0]),
      labels: l.b.labels,
      dlogits: l.saved.get(node.id)!.dlogits,
      stats: l.b.lossStats,
    })],
    backward: () => [],
  },
};

/**
 * Normalization nodes whose only consumer is a ReLU: their kernels apply it (the forward writes
 * relu(y), the backward masks dy by that output), saving the ReLU's two passes over memory; the
 * ReLU node then records nothing and shares the normalization's output and gradient.
 */
function reluFusions(nodes: readonly Node[]): Set<number> {
  const consumers = consumersOf(nodes);
  return new Set(
    nodes.filter((n) => {
      const c = consumers.get(n.id);
      return NORMALIZATIONS.has(n.op.kind) && c?.length === 1 && c[0].op.kind === "relu";
    }).map((n) => n.id),
  );
}

/** Each node's consumers. */
function consumersOf(nodes: readonly Node[]): Map<number, Node[]> {
  const consumers = new Map<number, Node[]>();
  for (const n of nodes) {
    for (const i of n.inputs) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  }
  return consumers;
}

/**
 * ReLU nodes (not fused into a normalization) that work in place: their input is read by them
 * alone and by no backward (its producer's backward reads its own input, not its output), so
 * the forward overwrites it with relu(x); the backward then overwrites its output's gradient
 * with its input's, where that gradient is its own.
 */
function inPlaceRelus(nodes: readonly Node[], fused: ReadonlySet<number>): Set<number> {
  const consumers = consumersOf(nodes);
  const readsOwnInput = new Set<OpKind>(["linear", "conv", "add", "maxpool2", "avgpool"]);
  return new Set(
    nodes.filter((n) => {
      const input = nodes[n.inputs[0]];
      return n.op.kind === "relu" && !fused.has(input?.id) &&
        readsOwnInput.has(input.op.kind) && consumers.get(input.id)?.length === 1;
    }).map((n) => n.id),
  );
}

function op(kind: OpKind): GpuOp {
  const o = OPS[kind];
  if (!o) throw new Error(`no GPU lowering for ${kind}`);
  return o;
}

/**
 * Where a pass's transient tensors (every activation but the logits, every gradient, what a
 * forward saves) live: a buffer of at least `elements` reals for each, in the order the walker
 * asks. The default gives each its own; the buffer planner (step_program.ts) gives shared slots.
 */
export type TensorAllocator = (elements: number, label: string) => GPUBuffer;

/**
 * Records the graph as one pass at `rows` rows: activations allocated by `allocate`, the
 * forward up to the loss ("train") or the logits ("probe": training-mode BatchNorm on the
 * probe's own statistics; "eval": running statistics), and in train mode the backward into
 * `grads`. The logits, which later phases read, get a buffer of their own.
 */
export function recordPass(
  gpu: Gpu,
  b: PassBuffers,
  rows: number,
  mode: PassMode,
  allocate: TensorAllocator = (elements, label) => realBuffer(gpu, b.precision, elements, label),
): Pass {
  const { layout, runs } = b;
  const nodes = layout.graph.nodes;
  const buffer = (elements: number, label: string) => allocate(elements, `${mode} ${label}`);
  const alloc = (elements: number, label: string) =>
    runView(buffer(runs * rows * elements, label), rows * elements);
  const acts = new Map<number, TensorView>();
  const l: Lowering = {
    gpu,
    b,
    mode,
    rows,
    act: (id) => acts.get(id)!,
    alloc: (elements, label) => runView(buffer(runs * elements, label), elements),
    param: (t) => runView(b.params, layout.size, t.offset),
    grad: (t) => runView(b.grads, layout.size, t.offset),
    needsGrad: (id) => nodes[id].op.kind !== "input",
    saved: new Map(),
    reluFused: reluFusions(nodes),
  };
  const fusedRelu = (node: Node) => node.op.kind === "relu" && l.reluFused.has(node.inputs[0]);
  const inPlace = inPlaceRelus(nodes, l.reluFused);
  const train = mode === "train";
  const last = train ? layout.graph.loss : layout.graph.logits;
  const forward: Dispatch[] = [];
  for (const node of nodes.slice(0, last + 1)) {
    if (node.op.kind === "input") {
      acts.set(node.id, runView(b.input, 0));
      continue;
    }
    if (fusedRelu(node)) {
      acts.set(node.id, acts.get(node.inputs[0])!); // written by its normalization's kernels
      continue;
    }
    if (node.op.kind === "softmax_xent") {
      l.saved.set(node.id, { dlogits: alloc(layout.classes, "dlogits") });
    } else if (node.id === layout.graph.logits) {
      const elements = rows * layout.classes;
      const logits = realBuffer(gpu, b.precision, runs * elements, `${mode} logits`);
      acts.set(node.id, runView(logits, elements));
    } else if (inPlace.has(node.id)) {
      acts.set(node.id, acts.get(node.inputs[0])!);
    } else acts.set(node.id, alloc(shapeSize(node.shape), node.name));
    forward.push(...op(node.op.kind).forward(node, l));
  }
  const logits = acts.get(layout.graph.logits)!;
  if (!train) return { rows, forward, backward: [], logits };

  // Gradient of each activation: an owned buffer, or an alias of a consumer's gradient.
  const grads = new Map<number, { view: TensorView; owned: boolean }>();
  grads.set(layout.graph.logits, {
    view: l.saved.get(layout.graph.loss)!.dlogits,
    owned: true,
  });
  const backward: Dispatch[] = [];
  for (const node of [...nodes].reverse()) {
    const dOut = grads.get(node.id)?.view;
    if (!dOut || node.op.kind === "softmax_xent") continue;
    const after: Dispatch[] = [];
    const accumulate = (id: number, contribution: TensorView) => {
      const prev = grads.get(id)!;
      const sum = prev.owned ? prev.view : alloc(shapeSize(nodes[id].shape), `d${nodes[id].name}`);
      after.push(addKernel(gpu, {
        precision: b.precision,
        runs,
        count: rows * shapeSize(nodes[id].shape),
        a: prev.view,
        b: contribution,
        out: sum,
      }));
      grads.set(id, { view: sum, owned: true });
    };
    const dx = (k: number) => {
      const id = node.inputs[k], view = alloc(shapeSize(nodes[id].shape), `d${nodes[id].name}`);
      if (grads.has(id)) accumulate(id, view);
      else grads.set(id, { view, owned: true });
      return view;
    };
    const pass = (k: number, view: TensorView) => {
      const id = node.inputs[k];
      if (!l.needsGrad(id)) return;
      if (grads.has(id)) accumulate(id, view);
      else grads.set(id, { view, owned: false });
    };
    // An in-place ReLU whose output gradient is its own writes its input's gradient over it.
    const overDOut = inPlace.has(node.id) && grads.get(node.id)!.owned &&
      !grads.has(node.inputs[0]);
    const dxOver = (k: number) => {
      grads.set(node.inputs[k], { view: dOut, owned: true });
      return dOut;
    };
    if (fusedRelu(node)) pass(0, dOut); // its backward runs in its normalization's
    else backward.push(...op(node.op.kind).backward(node, l, dOut, overDOut ? dxOver : dx, pass));
    backward.push(...after);
  }
  return { rows, forward, backward, logits };
}
