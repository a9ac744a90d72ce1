/**
 * The models the trainer offers, written as plain graph code (core/graph.ts).
 *
 * @module
 */

import { GraphBuilder, type ModelLayout, modelLayout, shapeSize, type Tensor } from "./graph.ts";

/** Which network and its size settings. */
export type ModelSpec =
  | { model: "mlp"; hidden: number[] }
  | { model: "cnn" }
  | { model: "preresnet"; depth: number; width: number };

/** The input and output of a model: per-example input shape and the number of classes. */
export interface ModelData {
  inputShape: number[];
  classes: number;
  /** BatchNorm has learnable scale and shift (group O). */
  affine: boolean;
}

/** Builds the layout of `spec` for `data`. */
export function buildModel(spec: ModelSpec, data: ModelData): ModelLayout {
  const b = new GraphBuilder(data.affine);
  const x = b.input(spec.model === "mlp" ? [shapeSize(data.inputShape)] : data.inputShape);
  switch (spec.model) {
    case "mlp":
      return modelLayout(
        b.build(mlp(x, spec.hidden, data.classes)),
        `mlp ${[shapeSize(data.inputShape), ...spec.hidden, data.classes].join("-")}`,
      );
    case "cnn":
      return modelLayout(b.build(cnn(x, data.classes)), "cnn 32-64-64");
    case "preresnet":
      return modelLayout(
        b.build(preresnet(x, spec.depth, spec.width, data.classes)),
        `preresnet-${spec.depth} (width ${spec.width})`,
      );
  }
}

/** MLP: (Linear without bias -> BN -> ReLU) per hidden width, then a Linear head with bias. */
export function mlp(x: Tensor, hidden: number[], classes: number): Tensor {
  if (hidden.length === 0) throw new Error("mlp: at least one hidden layer");
  for (const width of hidden) x = x.linear(width).bn().relu();
  return x.linear(classes, { bias: true, name: "head" }).softmaxCrossEntropy();
}

/**
 * BatchNorm CNN: three Conv3×3-BN-ReLU blocks of 32, 64 and 64 channels, 2×2 max pooling after
 * the first two, global average pooling and a linear head.
 */
export function cnn(x: Tensor, classes: number): Tensor {
  x = x.conv(32, 3).bn().relu().maxpool2();
  x = x.conv(64, 3).bn().relu().maxpool2();
  x = x.conv(64, 3).bn().relu().avgpool();
  return x.linear(classes, { bias: true, name: "head" }).softmaxCrossEntropy();
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
 * block BN-ReLU-conv3×3 twice plus the shortcut, a final BN-ReLU, global average pooling and a
 * linear head. A block whose shape changes takes a 1×1 projection of its pre-activated input
 * relu(bn(x)) (He et al.'s form, which keeps it jointly scale-invariant, THEORY §1).
 */
export function preresnet(x: Tensor, depth: number, width: number, classes: number): Tensor {
  const n = preresnetBlocks(depth);
  x = x.conv(width, 3, { name: "stem" });
  for (let stage = 0; stage < 3; stage++) {
    const channels = width << stage;
    for (let i = 0; i < n; i++) {
      const name = `layer${stage + 1}.${i}`;
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const pre = x.bn({ name: `${name}.bn1` }).relu();
      const branch = pre.conv(channels, 3, { stride, name: `${name}.conv1` })
        .bn({ name: `${name}.bn2` }).relu()
        .conv(channels, 3, { name: `${name}.conv2` });
      const projected = stride !== 1 || x.shape[2] !== channels;
      const shortcut = projected ? pre.conv(channels, 1, { stride, name: `${name}.shortcut` }) : x;
      x = branch.add(shortcut);
    }
  }
  x = x.bn({ name: "bn_final" }).relu().avgpool();
  return x.linear(classes, { bias: true, name: "head" }).softmaxCrossEntropy();
}
