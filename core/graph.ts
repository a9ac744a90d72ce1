/**
 * The model graph: a list of typed nodes in execution order, each naming its inputs, written as
 * plain code (`x.conv(32, 3).bn().relu()`), and the flat parameter layout derived from it,
 * with group S (the jointly scale-invariant weights, THEORY §1) found by a rule over the graph.
 *
 * Tensors are per example: `[features]` for flat activations, `[H, W, C]` for images (NHWC,
 * channels last); a batch adds a leading row dimension, and run stacking another. Weights are
 * stored inputs × outputs: a linear layer's [in, out], a convolution's [K*K*Cin, Cout] (row
 * (kh*K + kw)*Cin + ci), so forward passes are products X·W.
 *
 * Layout of the flat parameter vector (the same on the GPU, stacked by run, and in the float64
 * reference): all group-S tensors first, then all group-O tensors, each group in graph order.
 * So the optimizer, the norms over S and the Lemma-2 rescale each act on one contiguous range.
 *
 * @module
 */

import { type Conv2dShape, convOutputSize } from "./conv_shape.ts";

/** What a node computes. */
export type Op =
  | { kind: "input" }
  | { kind: "linear"; outputs: number; bias: boolean }
  | { kind: "conv"; outputs: number; kernel: number; stride: number; pad: number }
  | { kind: "batchnorm"; affine: boolean }
  | { kind: "relu" }
  | { kind: "maxpool2" }
  | { kind: "avgpool" }
  | { kind: "add" }
  | { kind: "softmax_xent" };

/** The node kinds. */
export type OpKind = Op["kind"];

/** One node: its op, its inputs (earlier node ids) and its per-example output shape. */
export interface Node<K extends OpKind = OpKind> {
  id: number;
  /** Unique, PyTorch-like (`layer1.0.conv1`); parameters are `<name>.weight`, `<name>.bias`. */
  name: string;
  op: Extract<Op, { kind: K }>;
  inputs: number[];
  /** Per-example output shape: [features] or [H, W, C]; [] for the loss. */
  shape: number[];
}

/** A whole model: nodes in execution order, the loss last, the logits feeding it. */
export interface Graph {
  nodes: Node[];
  /** Id of the logits node (the loss's input). */
  logits: number;
  /** Id of the loss node. */
  loss: number;
}

/** Elements of one example of `shape`. */
export function shapeSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Inputs per output of a linear or conv node (PyTorch's fan-in): the rows of its weight, the
 * multiply-adds of one output element; 0 for other ops.
 */
export function fanIn(graph: Graph, node: Node): number {
  const op = node.op, input = graph.nodes[node.inputs[0]]?.shape ?? [];
  if (op.kind === "linear") return shapeSize(input);
  if (op.kind === "conv") return op.kernel * op.kernel * input[2];
  return 0;
}

/**
 * Rows and features of `node`'s output at `rows` examples as a matrix over its last dimension
 * (features, or an image's channels): the view BatchNorm normalises.
 */
export function nodeMatrix(node: Node, rows: number): { rows: number; features: number } {
  const features = node.shape[node.shape.length - 1];
  return { rows: (rows * shapeSize(node.shape)) / features, features };
}

/** The convolution that conv node `node` computes on `rows` examples. */
export function convGeometry(graph: Graph, node: Node, rows: number): Conv2dShape {
  if (node.op.kind !== "conv") throw new Error(`${node.name} is a ${node.op.kind}, not a conv`);
  const { outputs, kernel, stride, pad } = node.op;
  const [h, w, cin] = graph.nodes[node.inputs[0]].shape;
  return { n: rows, h, w, cin, cout: outputs, k: kernel, stride, pad };
}

/** A pooling node's input on `rows` examples: batch and NHWC image. */
export interface PoolGeometry {
  n: number;
  h: number;
  w: number;
  c: number;
}

/** The input that pooling node `node` reads on `rows` examples. */
export function poolGeometry(graph: Graph, node: Node, rows: number): PoolGeometry {
  const [h, w, c] = graph.nodes[node.inputs[0]].shape;
  return { n: rows, h, w, c };
}

/** A node's output while the graph is being written; methods append nodes. */
export class Tensor {
  constructor(readonly builder: GraphBuilder, readonly id: number) {}

  /** Per-example shape of this tensor. */
  get shape(): number[] {
    return this.builder.nodes[this.id].shape;
  }

  /** Linear layer (flattens an image); no bias unless asked (a BatchNorm usually follows). */
  linear(outputs: number, opts: { bias?: boolean; name?: string } = {}): Tensor {
    return this.builder.add(
      { kind: "linear", outputs, bias: opts.bias ?? false },
      [this],
      [outputs],
      opts.name,
    );
  }

  /** K×K convolution (no bias), zero padding `pad` (default K/2 rounded down), on NHWC images. */
  conv(
    outputs: number,
    kernel: number,
    opts: { stride?: number; pad?: number; name?: string } = {},
  ): Tensor {
    const [h, w] = this.image("conv");
    const stride = opts.stride ?? 1, pad = opts.pad ?? Math.floor(kernel / 2);
    const out = (n: number) => convOutputSize(n, kernel, stride, pad);
    if (out(h) < 1 || out(w) < 1) {
      throw new Error(`conv ${kernel}x${kernel}/${stride}: input ${h}x${w} is too small`);
    }
    return this.builder.add(
      { kind: "conv", outputs, kernel, stride, pad },
      [this],
      [out(h), out(w), outputs],
      opts.name,
    );
  }

  /** BatchNorm over the last dimension (features, or channels of an image). */
  bn(opts: { affine?: boolean; name?: string } = {}): Tensor {
    const affine = opts.affine ?? this.builder.affine;
    return this.builder.add({ kind: "batchnorm", affine }, [this], this.shape, opts.name);
  }

  /** ReLU. */
  relu(): Tensor {
    return this.builder.add({ kind: "relu" }, [this], this.shape);
  }

  /** 2×2 max pooling, stride 2 (an odd last row or column is dropped, as PyTorch). */
  maxpool2(): Tensor {
    const [h, w, c] = this.image("maxpool2");
    if (h < 2 || w < 2) throw new Error(`maxpool2: input ${h}x${w} is too small`);
    return this.builder.add({ kind: "maxpool2" }, [this], [h >> 1, w >> 1, c]);
  }

  /** Global average pooling: [H, W, C] -> [C]. */
  avgpool(): Tensor {
    const [, , c] = this.image("avgpool");
    return this.builder.add({ kind: "avgpool" }, [this], [c]);
  }

  /** Elementwise sum with a tensor of the same shape (a residual connection). */
  add(other: Tensor): Tensor {
    if (this.shape.join("x") !== other.shape.join("x")) {
      throw new Error(`add: shapes ${this.shape.join("x")} and ${other.shape.join("x")} differ`);
    }
    return this.builder.add({ kind: "add" }, [this, other], this.shape);
  }

  /** Mean softmax cross-entropy of these logits against the batch's labels: the loss. */
  softmaxCrossEntropy(): Tensor {
    if (this.shape.length !== 1) throw new Error("softmax_xent: logits must be flat");
    return this.builder.add({ kind: "softmax_xent" }, [this], [], "loss");
  }

  private image(what: string): number[] {
    if (this.shape.length !== 3) {
      throw new Error(`${what} needs an image input [H, W, C], got [${this.shape.join(", ")}]`);
    }
    return this.shape;
  }
}

/** Writes a graph: `const x = b.input([28, 28, 1]); b.build(x.conv(32, 3).bn().relu()...)`. */
export class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly #counts = new Map<string, number>();

  /** `affine`: the default of `bn()` (learnable scale and shift). */
  constructor(readonly affine = true) {}

  /** The model's input, per-example `shape`. */
  input(shape: number[]): Tensor {
    if (this.nodes.length) throw new Error("input must be the first node");
    return this.add({ kind: "input" }, [], shape, "input");
  }

  /** Appends a node (used by {@link Tensor}'s methods). */
  add(op: Op, inputs: Tensor[], shape: number[], name?: string): Tensor {
    if (shape.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new Error(`${op.kind}: bad output shape [${shape.join(", ")}]`);
    }
    const prefix = { linear: "fc", conv: "conv", batchnorm: "bn" }[op.kind as string] ?? op.kind;
    const n = this.#counts.get(prefix) ?? 0;
    this.#counts.set(prefix, n + 1);
    const node = {
      id: this.nodes.length,
      name: name ?? `${prefix}${n}`,
      op,
      inputs: inputs.map((t) => t.id),
      shape,
    } as Node;
    if (this.nodes.some((m) => m.name === node.name)) throw new Error(`duplicate name ${name}`);
    this.nodes.push(node);
    return new Tensor(this, node.id);
  }

  /** Finishes the graph at `loss` (a softmaxCrossEntropy node, the last one written). */
  build(loss: Tensor): Graph {
    const node = this.nodes[loss.id];
    if (node.op.kind !== "softmax_xent" || loss.id !== this.nodes.length - 1) {
      throw new Error("the graph must end with its loss (softmaxCrossEntropy)");
    }
    return { nodes: this.nodes, logits: node.inputs[0], loss: loss.id };
  }
}

/** Parameter group: S = scale-invariant (THEORY §1), O = everything else. */
export type Group = "S" | "O";

/** One parameter tensor inside the flat vector. */
export interface ParamTensor {
  /** `<node name>.weight` / `.bias` (BatchNorm's affine scale and shift too, as PyTorch). */
  name: string;
  /** weight/bias of a linear or conv; gamma/beta of a BatchNorm. */
  role: "weight" | "bias" | "gamma" | "beta";
  node: number;
  group: Group;
  /** Element offset inside one run's flat vector. */
  offset: number;
  size: number;
  /** [in, out] of a linear weight, [K*K*Cin, Cout] of a conv weight, [n] of a vector. */
  shape: number[];
  /** Inputs per output of a weight (PyTorch's fan-in); 0 for BatchNorm's vectors. */
  fanIn: number;
}

/** Running statistics of one BatchNorm node. */
export interface BatchNormStats {
  node: number;
  /** Features (channels) normalised. */
  features: number;
  /** Offset in the running-statistics vectors of one run. */
  offset: number;
  /**
   * Index in {@link ModelLayout.sTensors} of the S tensor whose norm is this node's unit for
   * running statistics in weight-norm units (THEORY §5): the S weight nearest upstream whose
   * scale the input carries; undefined when the input does not scale with S (unit 1).
   */
  unit?: number;
  /** Homogeneity degree of the input (units are exact for degree 0 or 1). */
  inputDegree: number;
}

/** Where everything lives. */
export interface ModelLayout {
  /** e.g. "mlp 784-256-256-10", "preresnet-20 (width 16)". */
  description: string;
  graph: Graph;
  tensors: ParamTensor[];
  /** The S tensors in layout order (the per-tensor norms of the monitor and BN units). */
  sTensors: ParamTensor[];
  /** Every BatchNorm node's statistics, in graph order. */
  batchNorms: BatchNormStats[];
  /** Elements per run. */
  size: number;
  /** Group S is [0, sEnd), group O is [sEnd, size). */
  sEnd: number;
  /** Length of the running mean/var vectors per run. */
  statsSize: number;
  /** Per-example input shape and size. */
  inputShape: number[];
  inputSize: number;
  classes: number;
}

/** Homogeneity degree of an activation and the S weights it comes from (THEORY §1). */
interface Degree {
  value: number;
  /** The S weights (node ids) whose scale this activation carries, nearest last. */
  from: number[];
}

/**
 * Group S by THEORY §1's rule: propagate each activation's degree (the power of c it carries
 * when every S weight is scaled by c): the input 0; a linear or conv adds 1 when its weight
 * is in S (and must see degree 0 in all when it has a bias); BatchNorm outputs 0; ReLU and
 * pooling keep it; an addition needs equal degrees; the loss must see 0. Starting from every
 * linear and conv weight, each conflict drops the S weight nearest to it on the side of higher
 * degree, until none is left: the largest S the rule allows for the usual architectures (the
 * startup check verifies it numerically). Returns the S weights' node ids.
 */
export function scaleInvariantWeights(graph: Graph): Set<number> {
  const S = new Set(
    graph.nodes.filter((n) => n.op.kind === "linear" || n.op.kind === "conv").map((n) => n.id),
  );
  for (;;) {
    const conflict = degrees(graph, S).conflict;
    if (!conflict) return S;
    S.delete(conflict);
  }
}

/**
 * Degrees of every node under S, and the S weight to drop at the first conflict (if any): the
 * most recent contributor of the higher-degree side that the other side lacks.
 */
function degrees(graph: Graph, S: Set<number>): { degree: Degree[]; conflict?: number } {
  const degree: Degree[] = [];
  const zero: Degree = { value: 0, from: [] };
  const mismatch = (a: Degree, b: Degree): number | undefined => {
    if (a.value === b.value) return undefined;
    const [hi, lo] = a.value > b.value ? [a, b] : [b, a];
    const own = hi.from.filter((w) => !lo.from.includes(w));
    return own.length ? Math.max(...own) : Math.max(...hi.from);
  };
  for (const node of graph.nodes) {
    const input = degree[node.inputs[0]];
    let d: Degree, conflict: number | undefined;
    switch (node.op.kind) {
      case "input":
      case "batchnorm":
        d = zero;
        break;
      case "linear":
      case "conv": {
        d = S.has(node.id) ? { value: input.value + 1, from: [...input.from, node.id] } : input;
        if (node.op.kind === "linear" && node.op.bias) {
          conflict = mismatch(d, zero);
          d = zero;
        }
        break;
      }
      case "add": {
        const other = degree[node.inputs[1]];
        conflict = mismatch(input, other);
        d = { value: input.value, from: [...new Set([...input.from, ...other.from])] };
        break;
      }
      case "softmax_xent":
        conflict = mismatch(input, zero);
        d = zero;
        break;
      default:
        d = input;
    }
    if (conflict !== undefined) return { degree, conflict };
    degree.push(d);
  }
  return { degree };
}

/** The flat layout of `graph`: tensors (S first), BatchNorm statistics and their units. */
export function modelLayout(graph: Graph, description: string): ModelLayout {
  const S = scaleInvariantWeights(graph);
  type Draft = Omit<ParamTensor, "offset">;
  const drafts: Draft[] = [];
  for (const node of graph.nodes) {
    const op = node.op;
    const vector = (role: Draft["role"], n: number, group: Group = "O", fanIn = 0) =>
      drafts.push({
        name: `${node.name}.${role === "gamma" ? "weight" : role === "beta" ? "bias" : role}`,
        role,
        node: node.id,
        group,
        size: n,
        shape: [n],
        fanIn,
      });
    if (op.kind === "linear" || op.kind === "conv") {
      const rows = fanIn(graph, node);
      drafts.push({
        name: `${node.name}.weight`,
        role: "weight",
        node: node.id,
        group: S.has(node.id) ? "S" : "O",
        size: rows * op.outputs,
        shape: [rows, op.outputs],
        fanIn: rows,
      });
      if (op.kind === "linear" && op.bias) vector("bias", op.outputs, "O", rows);
    } else if (op.kind === "batchnorm" && op.affine) {
      const features = node.shape[node.shape.length - 1];
      vector("gamma", features);
      vector("beta", features);
    }
  }
  const ordered = [
    ...drafts.filter((d) => d.group === "S"),
    ...drafts.filter((d) => d.group === "O"),
  ];
  let offset = 0;
  const tensors = ordered.map((d) => {
    const t = { ...d, offset };
    offset += d.size;
    return t;
  });
  const sTensors = tensors.filter((t) => t.group === "S");
  const { degree } = degrees(graph, S);
  let statsOffset = 0;
  const batchNorms: BatchNormStats[] = [];
  for (const node of graph.nodes) {
    if (node.op.kind !== "batchnorm") continue;
    const features = node.shape[node.shape.length - 1];
    const input = degree[node.inputs[0]];
    const nearest = input.from.length ? Math.max(...input.from) : undefined;
    const unit = nearest === undefined
      ? undefined
      : sTensors.findIndex((t) => t.node === nearest && t.role === "weight");
    batchNorms.push({
      node: node.id,
      features,
      offset: statsOffset,
      unit,
      inputDegree: input.value,
    });
    statsOffset += features;
  }
  const inputShape = graph.nodes[0].shape;
  return {
    description,
    graph,
    tensors,
    sTensors,
    batchNorms,
    size: offset,
    sEnd: sTensors.reduce((s, t) => s + t.size, 0),
    statsSize: statsOffset,
    inputShape,
    inputSize: shapeSize(inputShape),
    classes: graph.nodes[graph.logits].shape[0],
  };
}

/** The parameter tensors of node `id` by role. */
export function nodeParams(
  layout: ModelLayout,
  id: number,
): Partial<Record<ParamTensor["role"], ParamTensor>> {
  return Object.fromEntries(layout.tensors.filter((t) => t.node === id).map((t) => [t.role, t]));
}
