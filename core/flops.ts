/**
 * Floating-point work of a model graph, for the benchmarks' GFLOP/s: 2 × multiply-adds of the
 * products (linear layers and convolutions); the elementwise and normalisation work is left
 * out, as is usual for such figures.
 *
 * @module
 */

import type { ModelLayout, Node } from "./graph.ts";
import { fanIn, shapeSize } from "./graph.ts";

/** 2 × multiply-adds of one example through `node`'s product (0 for other ops: fan-in 0). */
function productFlops(layout: ModelLayout, node: Node): number {
  return 2 * shapeSize(node.shape) * fanIn(layout.graph, node);
}

/** One forward pass of `rows` examples through one run. */
export function forwardFlops(layout: ModelLayout, rows: number): number {
  return rows * layout.graph.nodes.reduce((f, n) => f + productFlops(layout, n), 0);
}

/** One training step of one example through `node`: forward, dW, and dX unless into the input. */
function stepFlops(layout: ModelLayout, node: Node): number {
  const readsInput = layout.graph.nodes[node.inputs[0]]?.op.kind === "input";
  return productFlops(layout, node) * (readsInput ? 2 : 3);
}

/** One training step of `rows` examples of one run: forward, dW, and dX except into the input. */
export function trainStepFlops(layout: ModelLayout, rows: number): number {
  return rows * layout.graph.nodes.reduce((f, n) => f + stepFlops(layout, n), 0);
}

/** {@link trainStepFlops}' share of `node` (0 for nodes without a product). */
export function nodeTrainStepFlops(layout: ModelLayout, node: Node, rows: number): number {
  return rows * stepFlops(layout, node);
}
