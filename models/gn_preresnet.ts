/**
 * PreResNet-20 with GroupNorm (Wu & He 2018) in place of BatchNorm: the built-in preresnet's
 * graph (core/models.ts) with every normalization a GroupNorm of 4 groups, which does not
 * depend on the batch (small batches, eval mode equal to training mode). GroupNorm's output is
 * invariant to its input's scale as BatchNorm's is, so group S is the same: every conv.
 *
 * @module
 */

import type { Tensor } from "../core/graph.ts";
import { type ModelInput, preresnet } from "../core/models.ts";

/** PreResNet of `depth` (6n + 2) and base `width` with GroupNorm of `groups` groups. */
export function gnPreresnet(
  x: Tensor,
  data: ModelInput,
  depth: number,
  width: number,
  groups: number,
): Tensor {
  return preresnet(
    x,
    data,
    depth,
    width,
    (t, name) => t.gn(groups, { name: name.replace("bn", "gn") }),
  );
}

/** PreResNet-20, width 16, GroupNorm with 4 groups. */
export function model(x: Tensor, data: ModelInput): Tensor {
  return gnPreresnet(x, data, 20, 16, 4);
}
