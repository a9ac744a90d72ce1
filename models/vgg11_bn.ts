/**
 * VGG-11 with BatchNorm (Simonyan & Zisserman 2015; torchvision's vgg11_bn) at an eighth of
 * the width, for small images: eight Conv3×3-BN-ReLU layers of 8, 16, 32, 32, 64, 64, 64, 64
 * channels with 2×2 max pooling after the 1st, 2nd, 4th and 6th (while the image is at least
 * 2×2), then global average pooling and a linear head in place of VGG's three large linear
 * layers. Every conv is followed by BatchNorm, so every conv weight is in S.
 *
 * @module
 */

import type { Tensor } from "../core/graph.ts";
import type { ModelInput } from "../core/models.ts";

/** Channels of each conv layer; "M" is a 2×2 max pooling. */
const LAYERS: (number | "M")[] = [8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64];

/** VGG-11-BN, width 1/8. */
export function model(x: Tensor, data: ModelInput): Tensor {
  for (const layer of LAYERS) {
    if (layer !== "M") x = x.conv(layer, 3).bn().relu();
    else if (x.shape[0] >= 2 && x.shape[1] >= 2) x = x.maxpool2();
  }
  return x.avgpool().linear(data.classes, { bias: true, name: "head" });
}
