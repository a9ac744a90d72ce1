/**
 * WideResNet-16-4 (Zagoruyko & Komodakis 2016): a 3×3 stem of 16 channels, three stages of
 * two pre-activation blocks of 64, 128 and 256 channels (the first block of stages 2 and 3
 * halves the resolution), each block BN-ReLU-conv3×3 twice plus the shortcut (a 1×1
 * projection of the pre-activated input where the shape changes), a final BN-ReLU, global
 * average pooling and a linear head. Dropout is left out (the trainer has none).
 *
 * @module
 */

import type { Tensor } from "../core/graph.ts";
import type { ModelInput } from "../core/models.ts";

/** Blocks per stage ((16 - 4) / 6) and the widening factor. */
const BLOCKS = 2, WIDEN = 4;

/** WRN-16-4. */
export function model(x: Tensor, data: ModelInput): Tensor {
  x = x.conv(16, 3, { name: "conv1" });
  for (let stage = 0; stage < 3; stage++) {
    const channels = (16 << stage) * WIDEN;
    for (let i = 0; i < BLOCKS; i++) {
      const name = `block${stage + 1}.${i}`;
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const pre = x.bn({ name: `${name}.bn1` }).relu();
      const branch = pre.conv(channels, 3, { stride, name: `${name}.conv1` })
        .bn({ name: `${name}.bn2` }).relu()
        .conv(channels, 3, { name: `${name}.conv2` });
      const projected = stride !== 1 || x.shape[2] !== channels;
      x = branch.add(projected ? pre.conv(channels, 1, { stride, name: `${name}.shortcut` }) : x);
    }
  }
  x = x.bn({ name: "bn_final" }).relu().avgpool();
  return x.linear(data.classes, { bias: true, name: "fc" });
}
