/**
 * Models as plain graph code (core/graph.ts): a model is a function from the input tensor and
 * the data's shape to the logits, the same for the built-in models here and for a model file
 * (`--model path/to/net.ts`, docs/models.md). {@link buildLayout} adds the loss and derives the
 * flat layout with group S.
 *
 * @module
 */

import { GraphBuilder, GraphError, type ModelLayout, modelLayout, Tensor } from "./graph.ts";

/** What a model sees of the data: the per-example input shape and the number of classes. */
export interface ModelInput {
  /** [features] for flat data, [H, W, C] for images. */
  inputShape: number[];
  classes: number;
}

/** A model: builds the network on input `x` and returns its logits ([classes]). */
export type ModelFunction = (x: Tensor, data: ModelInput) => Tensor;

/** The built-in models and their size settings. */
export type BuiltinSpec =
  | { model: "mlp"; hidden: number[] }
  | { model: "cnn" }
  | { model: "preresnet"; depth: number; width: number };

/** Which network: a built-in one, or a model function (a model file's) with its description. */
export type ModelSpec = BuiltinSpec | { model: "function"; fn: ModelFunction; description: string };

/** The data side of a model: its input and whether normalizations have learnable scale and shift. */
export interface ModelData extends ModelInput {
  /** The default of `bn()`, `gn()`, `ln()`: learnable scale and shift (group O). */
  affine: boolean;
}

/** The model function and description of a built-in model. */
function builtin(spec: BuiltinSpec): { fn: ModelFunction; description: (d: ModelInput) => string } {
  switch (spec.model) {
    case "mlp":
      return {
        fn: (x, data) => mlp(x, data, spec.hidden),
        description: (d) =>
          `mlp ${[d.inputShape.reduce((a, b) => a * b, 1), ...spec.hidden, d.classes].join("-")}`,
      };
    case "cnn":
      return { fn: cnn, description: () => "cnn 32-64-64" };
    case "preresnet":
      return {
        fn: (x, data) => preresnet(x, data, spec.depth, spec.width),
        description: () => `preresnet-${spec.depth} (width ${spec.width})`,
      };
  }
}

/** Builds the layout of `spec` for `data`. */
export function buildModel(spec: ModelSpec, data: ModelData): ModelLayout {
  if (spec.model === "function") return buildLayout(spec.fn, data, spec.description);
  const { fn, description } = builtin(spec);
  return buildLayout(fn, data, description(data));
}

/**
 * Runs model function `fn` on the data's input, checks that it returned logits of this graph
 * ([classes]), adds the loss and lays the parameters out. Graph errors name the node.
 */
export function buildLayout(fn: ModelFunction, data: ModelData, description: string): ModelLayout {
  const b = new GraphBuilder(data.affine);
  const x = b.input(data.inputShape);
  const logits = fn(x, { inputShape: [...data.inputShape], classes: data.classes });
  if (!(logits instanceof Tensor) || logits.builder !== b) {
    const got = logits === undefined ? "undefined" : typeof logits;
    throw new GraphError("logits", `the model returned ${got}, not a tensor of its graph`);
  }
  if (logits.shape.length !== 1 || logits.shape[0] !== data.classes) {
    throw new GraphError(
      logits.name,
      `the logits must be [${data.classes}] (the data's classes), got [${logits.shape.join(", ")}]`,
    );
  }
  return modelLayout(b.build(logits.softmaxCrossEntropy()), description);
}

/** MLP: (Linear without bias -> BN -> ReLU) per hidden width, then a Linear head with bias. */
export function mlp(x: Tensor, data: ModelInput, hidden: number[]): Tensor {
  if (hidden.length === 0) throw new Error("mlp: at least one hidden layer");
  for (const width of hidden) x = x.linear(width).bn().relu();
  return x.linear(data.classes, { bias: true, name: "head" });
}

/**
 * BatchNorm CNN: three Conv3×3-BN-ReLU blocks of 32, 64 and 64 channels, 2×2 max pooling after
 * the first two, global average pooling and a linear head.
 */
export function cnn(x: Tensor, data: ModelInput): Tensor {
  x = x.conv(32, 3).bn().relu().maxpool2();
  x = x.conv(64, 3).bn().relu().maxpool2();
  x = x.conv(64, 3).bn().relu().avgpool();
  return x.linear(data.classes, { bias: true, name: "head" });
}

/** Depths of a CIFAR-style pre-activation ResNet: 6n + 2. */
export function preresnetBlocks(depth: number): number {
  const n = (depth - 2) / 6;
  if (!Number.isInteger(n) || n < 1) throw new Error(`preresnet: depth ${depth} is not 6n+2`);
  return n;
}

/**
 * Pre-activation ResNet (He et al. 2016) for small images: a 3×3 stem, three stages of n
 * blocks of widths w, 2w, 4w (the first block of stages 2 and 3 halves the resolution), each
 * block norm-ReLU-conv3×3 twice plus the shortcut, a final norm-ReLU, global average pooling
 * and a linear head. A block whose shape changes takes a 1×1 projection of its pre-activated
 * input relu(norm(x)) (He et al.'s form, which keeps it jointly scale-invariant, THEORY §1).
 * `norm` is BatchNorm unless given (a model file passes GroupNorm, for instance).
 */
export function preresnet(
  x: Tensor,
  data: ModelInput,
  depth: number,
  width: number,
  norm: (x: Tensor, name: string) => Tensor = (t, name) => t.bn({ name }),
): Tensor {
  const n = preresnetBlocks(depth);
  x = x.conv(width, 3, { name: "stem" });
  for (let stage = 0; stage < 3; stage++) {
    const channels = width << stage;
    for (let i = 0; i < n; i++) {
      const name = `layer${stage + 1}.${i}`;
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const pre = norm(x, `${name}.bn1`).relu();
      const branch = norm(pre.conv(channels, 3, { stride, name: `${name}.conv1` }), `${name}.bn2`)
        .relu()
        .conv(channels, 3, { name: `${name}.conv2` });
      const projected = stride !== 1 || x.shape[2] !== channels;
      const shortcut = projected ? pre.conv(channels, 1, { stride, name: `${name}.shortcut` }) : x;
      x = branch.add(shortcut);
    }
  }
  x = norm(x, "bn_final").relu().avgpool();
  return x.linear(data.classes, { bias: true, name: "head" });
}
