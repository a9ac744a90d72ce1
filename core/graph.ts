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
  | { kind: "linear"; outputs: number; bias: boolean; group?: Group }
  | { kind: "conv"; outputs: number; kernel: number; stride: number; pad: number; group?: Group }
  | { kind: "batchnorm"; affine: boolean }
  | { kind: "groupnorm"; groups: number; affine: boolean }
  | { kind: "relu" }
  | { kind: "maxpool2" }
  | { kind: "avgpool" }
  | { kind: "add" }
  | { kind: "softmax_xent" };

/** The node kinds. */
export type OpKind = Op["kind"];

/** The normalizations: each makes its output invariant to its input's scale (THEORY §1). */
export const NORMALIZATIONS: ReadonlySet<OpKind> = new Set(["batchnorm", "groupnorm"]);

/** A node's op as a person reads it: `groupnorm` with one group is a LayerNorm. */
export function opLabel(op: Op): string {
  if (op.kind !== "groupnorm") return op.kind;
  return op.groups === 1 ? "layernorm" : `groupnorm(${op.groups})`;
}

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

/**
 * A GroupNorm node's output on `rows` examples: each example's `spatial` positions of `channels`
 * channels (a flat activation has one position), normalised per example and group of
 * channels / groups consecutive channels.
 */
export interface GroupNormGeometry {
  rows: number;
  spatial: number;
  channels: number;
  groups: number;
}

/** The normalisation that groupnorm node `node` computes on `rows` examples. */
export function groupNormGeometry(node: Node, rows: number): GroupNormGeometry {
  if (node.op.kind !== "groupnorm") throw new Error(`${node.name} is not a groupnorm`);
  const channels = node.shape[node.shape.length - 1];
  return { rows, spatial: shapeSize(node.shape) / channels, channels, groups: node.op.groups };
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

/** A graph that cannot be built: names the node (by the name it would have) and the problem. */
export class GraphError extends Error {
  constructor(readonly node: string, problem: string) {
    super(`${node}: ${problem}`);
  }
}

/** Options of a linear or conv node: its name, and a mark that overrides the S/O rule. */
export interface WeightOptions {
  name?: string;
  /**
   * "O" keeps the weight out of S; "S" keeps it in S (the startup check then verifies the loss
   * is invariant, and the run is refused when it is not). Unmarked: THEORY §1's rule decides.
   */
  group?: Group;
}

/** A node's output while the graph is being written; methods append nodes. */
export class Tensor {
  constructor(readonly builder: GraphBuilder, readonly id: number) {}

  /** Per-example shape of this tensor. */
  get shape(): number[] {
    return this.builder.nodes[this.id].shape;
  }

  /** Name of the node that outputs this tensor. */
  get name(): string {
    return this.builder.nodes[this.id].name;
  }

  /** Linear layer (flattens an image); no bias unless asked (a normalization usually follows). */
  linear(outputs: number, opts: WeightOptions & { bias?: boolean } = {}): Tensor {
    const op: Op = { kind: "linear", outputs, bias: opts.bias ?? false };
    return this.builder.add(marked(op, opts.group), [this], [outputs], opts.name);
  }

  /** K×K convolution (no bias), zero padding `pad` (default K/2 rounded down), on NHWC images. */
  conv(
    outputs: number,
    kernel: number,
    opts: WeightOptions & { stride?: number; pad?: number } = {},
  ): Tensor {
    const [h, w] = this.image("conv", opts.name);
    const stride = opts.stride ?? 1, pad = opts.pad ?? Math.floor(kernel / 2);
    const out = (n: number) => convOutputSize(n, kernel, stride, pad);
    if (out(h) < 1 || out(w) < 1) {
      this.builder.fail("conv", opts.name, `${kernel}x${kernel}/${stride} on ${h}x${w}: too small`);
    }
    const op: Op = { kind: "conv", outputs, kernel, stride, pad };
    return this.builder.add(marked(op, opts.group), [this], [out(h), out(w), outputs], opts.name);
  }

  /** BatchNorm over the last dimension (features, or channels of an image), across the batch. */
  bn(opts: { affine?: boolean; name?: string } = {}): Tensor {
    const affine = opts.affine ?? this.builder.affine;
    return this.builder.add({ kind: "batchnorm", affine }, [this], this.shape, opts.name);
  }

  /**
   * GroupNorm: each example normalised over groups of channels / `groups` consecutive channels
   * (and every position of an image), with a learnable scale and shift per channel.
   */
  gn(groups: number, opts: { affine?: boolean; name?: string } = {}): Tensor {
    const channels = this.shape[this.shape.length - 1];
    if (!Number.isInteger(groups) || groups < 1 || channels % groups !== 0) {
      this.builder.fail(
        "groupnorm",
        opts.name,
        `${groups} groups do not divide ${channels} channels`,
      );
    }
    const affine = opts.affine ?? this.builder.affine;
    return this.builder.add({ kind: "groupnorm", groups, affine }, [this], this.shape, opts.name);
  }

  /**
   * LayerNorm: each example normalised over all its features (PyTorch's LayerNorm on a flat
   * tensor; GroupNorm with one group on an image), learnable scale and shift per channel.
   */
  ln(opts: { affine?: boolean; name?: string } = {}): Tensor {
    return this.gn(1, opts);
  }

  /** ReLU. */
  relu(): Tensor {
    return this.builder.add({ kind: "relu" }, [this], this.shape);
  }

  /** 2×2 max pooling, stride 2 (an odd last row or column is dropped, as PyTorch). */
  maxpool2(): Tensor {
    const [h, w, c] = this.image("maxpool2");
    if (h < 2 || w < 2) this.builder.fail("maxpool2", undefined, `input ${h}x${w} is too small`);
    return this.builder.add({ kind: "maxpool2" }, [this], [h >> 1, w >> 1, c]);
  }

  /** Global average pooling: [H, W, C] -> [C]. */
  avgpool(): Tensor {
    const [, , c] = this.image("avgpool");
    return this.builder.add({ kind: "avgpool" }, [this], [c]);
  }

  /** Elementwise sum with a tensor of the same shape (a residual connection). */
  add(other: Tensor): Tensor {
    if (other?.builder !== this.builder) {
      this.builder.fail("add", undefined, "its argument is not a tensor of this graph");
    }
    if (this.shape.join("x") !== other.shape.join("x")) {
      this.builder.fail(
        "add",
        undefined,
        `shapes ${this.shape.join("x")} (${this.name}) and ${
          other.shape.join("x")
        } (${other.name}) differ`,
      );
    }
    return this.builder.add({ kind: "add" }, [this, other], this.shape);
  }

  /** Mean softmax cross-entropy of these logits against the batch's labels: the loss. */
  softmaxCrossEntropy(): Tensor {
    if (this.shape.length !== 1) {
      this.builder.fail(
        "softmax_xent",
        "loss",
        `logits must be flat, ${this.name} is [${this.shape.join(", ")}]`,
      );
    }
    return this.builder.add({ kind: "softmax_xent" }, [this], [], "loss");
  }

  private image(what: OpKind, name?: string): number[] {
    if (this.shape.length !== 3) {
      this.builder.fail(
        what,
        name,
        `needs an image input [H, W, C], ${this.name} is [${this.shape.join(", ")}]`,
      );
    }
    return this.shape;
  }
}

/** `op` with the user's S/O mark, when there is one. */
function marked(op: Op, group: Group | undefined): Op {
  if (group === undefined) return op;
  if (group !== "S" && group !== "O") throw new Error(`group: expected "S" or "O", got ${group}`);
  return { ...op, group } as Op;
}

/** The default name prefix of an op's nodes (PyTorch-like: fc0, conv1, bn2, gn0, ln0). */
function namePrefix(op: Op | OpKind): string {
  if (typeof op !== "string" && op.kind === "groupnorm" && op.groups === 1) return "ln";
  const kind = typeof op === "string" ? op : op.kind;
  return { linear: "fc", conv: "conv", batchnorm: "bn", groupnorm: "gn" }[kind as string] ?? kind;
}

/** Writes a graph: `const x = b.input([28, 28, 1]); b.build(x.conv(32, 3).bn().relu()...)`. */
export class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly #counts = new Map<string, number>();

  /** `affine`: the default of `bn()`, `gn()` and `ln()` (learnable scale and shift). */
  constructor(readonly affine = true) {}

  /** The model's input, per-example `shape`. */
  input(shape: number[]): Tensor {
    if (this.nodes.length) throw new GraphError("input", "must be the first node");
    return this.add({ kind: "input" }, [], shape, "input");
  }

  /** Throws a {@link GraphError} for the node of `kind` about to be written (named `name`). */
  fail(kind: OpKind, name: string | undefined, problem: string): never {
    const prefix = namePrefix(kind);
    throw new GraphError(name ?? `${prefix}${this.#counts.get(prefix) ?? 0}`, problem);
  }

  /** Appends a node (used by {@link Tensor}'s methods). */
  add(op: Op, inputs: Tensor[], shape: number[], name?: string): Tensor {
    if (shape.some((d) => !Number.isInteger(d) || d < 1)) {
      this.fail(op.kind, name, `bad output shape [${shape.join(", ")}]`);
    }
    if (name !== undefined && (typeof name !== "string" || !/^[A-Za-z_][\w.]*$/.test(name))) {
      this.fail(op.kind, undefined, `name ${JSON.stringify(name)} is not letters, digits, _ and .`);
    }
    const prefix = namePrefix(op);
    const n = this.#counts.get(prefix) ?? 0;
    this.#counts.set(prefix, n + 1);
    const node = {
      id: this.nodes.length,
      name: name ?? `${prefix}${n}`,
      op,
      inputs: inputs.map((t) => t.id),
      shape,
    } as Node;
    if (this.nodes.some((m) => m.name === node.name)) {
      this.fail(op.kind, node.name, "a node of that name exists already");
    }
    this.nodes.push(node);
    return new Tensor(this, node.id);
  }

  /** Finishes the graph at `loss` (a softmaxCrossEntropy node, the last one written). */
  build(loss: Tensor): Graph {
    const node = this.nodes[loss.id];
    if (node.op.kind !== "softmax_xent" || loss.id !== this.nodes.length - 1) {
      throw new GraphError("loss", "the graph must end with its loss (softmaxCrossEntropy)");
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

/** THEORY §1's rule applied to a graph: group S, and why each other weight is not in it. */
export interface GroupRule {
  /** The S weights' node ids. */
  S: Set<number>;
  /**
   * Each linear or conv left out of S, with the node where its scale broke the invariance
   * (the loss, an addition, a biased linear: itself), or undefined when marked O.
   */
  dropped: Map<number, number | undefined>;
}

/**
 * Group S by THEORY §1's rule: propagate each activation's degree (the power of c it carries
 * when every S weight is scaled by c): the input 0; a linear or conv adds 1 when its weight
 * is in S (and must see degree 0 in all when it has a bias); a normalization outputs 0; ReLU
 * and pooling keep it; an addition needs equal degrees; the loss must see 0. Starting from
 * every linear and conv weight not marked O, each conflict drops the S weight nearest to it on
 * the side of higher degree (never one marked S), until none is left: the largest S the rule
 * allows for the usual architectures (the startup check verifies it numerically). A conflict
 * that only a weight marked S could resolve is a {@link GraphError} naming it.
 */
export function groupRule(graph: Graph): GroupRule {
  const weights = graph.nodes.filter((n) => n.op.kind === "linear" || n.op.kind === "conv");
  const markedO = weights.filter((n) => markOf(n) === "O");
  const S = new Set(weights.filter((n) => markOf(n) !== "O").map((n) => n.id));
  const dropped = new Map<number, number | undefined>(markedO.map((n) => [n.id, undefined]));
  for (;;) {
    const { conflict } = degrees(graph, S);
    if (!conflict) return { S, dropped };
    const weight = graph.nodes[conflict.weight], at = graph.nodes[conflict.at];
    if (markOf(weight) === "S") {
      const where = at === weight
        ? "a bias is added to its output"
        : at.op.kind === "softmax_xent"
        ? "its scale reaches the loss"
        : `its scale reaches ${at.name} (${opLabel(at.op)})`;
      throw new GraphError(
        weight.name,
        `marked S, but ${where} with no normalization between, so the loss is not invariant to it`,
      );
    }
    S.delete(conflict.weight);
    dropped.set(conflict.weight, conflict.at);
  }
}

/** The S weights' node ids ({@link groupRule}). */
export function scaleInvariantWeights(graph: Graph): Set<number> {
  return groupRule(graph).S;
}

/** The user's S/O mark of a linear or conv node, if any. */
function markOf(node: Node): Group | undefined {
  return node.op.kind === "linear" || node.op.kind === "conv" ? node.op.group : undefined;
}

/**
 * Degrees of every node under S, and the first conflict (if any): where, and the S weight to
 * drop, the most recent contributor of the higher-degree side that the other side lacks (one
 * not marked S when there is one).
 */
function degrees(
  graph: Graph,
  S: Set<number>,
): { degree: Degree[]; conflict?: { weight: number; at: number } } {
  const degree: Degree[] = [];
  const zero: Degree = { value: 0, from: [] };
  const unmarked = (ws: number[]) => ws.filter((w) => markOf(graph.nodes[w]) !== "S");
  const mismatch = (a: Degree, b: Degree): number | undefined => {
    if (a.value === b.value) return undefined;
    const [hi, lo] = a.value > b.value ? [a, b] : [b, a];
    const own = hi.from.filter((w) => !lo.from.includes(w));
    const pick = [unmarked(own), unmarked(hi.from), own, hi.from].find((ws) => ws.length)!;
    return Math.max(...pick);
  };
  for (const node of graph.nodes) {
    const input = degree[node.inputs[0]];
    let d: Degree, conflict: number | undefined;
    switch (node.op.kind) {
      case "input":
      case "batchnorm":
      case "groupnorm":
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
    if (conflict !== undefined) return { degree, conflict: { weight: conflict, at: node.id } };
    degree.push(d);
  }
  return { degree };
}

/** The flat layout of `graph`: tensors (S first), BatchNorm statistics and their units. */
export function modelLayout(graph: Graph, description: string): ModelLayout {
  const { S } = groupRule(graph);
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
    } else if ((op.kind === "batchnorm" || op.kind === "groupnorm") && op.affine) {
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
