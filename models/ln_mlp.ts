/**
 * An MLP with LayerNorm: (Linear without bias -> LayerNorm -> ReLU) for two hidden layers of
 * 256, then a linear head with bias. LayerNorm normalises each example over its features, so
 * each hidden layer's weight is scale-invariant as under BatchNorm, and the statistics do not
 * depend on the batch.
 *
 * @module
 */

import type { Tensor } from "../core/graph.ts";
import type { ModelInput } from "../core/models.ts";

/** A LayerNorm MLP of the given hidden widths. */
export function lnMlp(x: Tensor, data: ModelInput, hidden: number[]): Tensor {
  for (const width of hidden) x = x.linear(width).ln().relu();
  return x.linear(data.classes, { bias: true, name: "head" });
}

/** LayerNorm MLP 784-256-256-10 (on the default data). */
export function model(x: Tensor, data: ModelInput): Tensor {
  return lnMlp(x, data, [256, 256]);
}
