/**
 * Data augmentation of training batches of images: random horizontal flips and random crops of
 * the zero-padded image, in the style of torchvision's `RandomCrop(H, padding=4)` followed by
 * `RandomHorizontalFlip()`, applied by the loader (`loader.ts`) to each training batch.
 *
 * Input and output are NORMALISED image batches in NHWC layout (see `Dataset`). The crop pads with
 * zeros in this normalised space, which is each channel's training mean in raw pixel values.
 * (torchvision pads the raw image, with black, before normalisation; the loader only holds the
 * normalised set, and padding with the mean is the usual choice for pre-normalised data: the
 * border carries no signal and does not shift the channel's mean.)
 *
 * Draws, per example in batch order, from one generator: with `crop`, the vertical offset `dy`
 * then the horizontal offset `dx`, each `rng.int(2 * CROP_PADDING + 1) - CROP_PADDING`, uniform
 * in `-4..4`; then with `flip`, `rng.next() < 0.5`. Nothing is drawn for a disabled transform.
 * The result is
 *
 *     out(h, w, c) = in(h + dy, w' + dx, c), w' = flip ? W - 1 - w : w,
 *
 * and 0 where `(h + dy, w' + dx)` falls outside the image: the `H×W` window at `(4 + dy, 4 + dx)`
 * of the image padded by 4 on every side, then flipped.
 *
 * @module
 */

import type { Rng } from "../../core/prng.ts";
import type { ImageShape } from "./types.ts";

/** Which augmentations the loader applies to training batches, and their seed. */
export interface AugmentOptions {
  /** Flip each example horizontally with probability 1/2. */
  flip: boolean;
  /** Pad each example by {@link CROP_PADDING} zeros (normalised) and take a random window. */
  crop: boolean;
  /**
   * Seed of the augmentation generator (`createRng(seed)`), separate from the shuffle seed; the
   * one generator continues across batches and epochs.
   */
  seed: number;
}

/** Pixels of zero padding on every side for `crop`: offsets range over `-4..4`. */
export const CROP_PADDING = 4;

/** The random draws of one example: crop offsets (0 without `crop`) and flip. */
export interface AugmentDraw {
  /** Vertical offset of the window: output row h is input row h + dy. */
  dy: number;
  /** Horizontal offset of the window: output column w is input column w + dx (before the flip). */
  dx: number;
  /** Whether the example is flipped horizontally. */
  flip: boolean;
}

/**
 * Augments the `size` NHWC images of `x` in place (see the module comment), drawing from `rng`,
 * and returns each example's draws. `x` must hold exactly `size` images of shape `image`.
 */
export function augmentBatch(
  x: Float32Array,
  size: number,
  image: ImageShape,
  opts: Pick<AugmentOptions, "flip" | "crop">,
  rng: Rng,
): AugmentDraw[] {
  const { height: H, width: W, channels: C } = image;
  const dim = H * W * C, rowLength = W * C;
  if (x.length !== size * dim) {
    throw new RangeError(`x has ${x.length} values, expected ${size} images of ${H}×${W}×${C}`);
  }
  const src = new Float32Array(dim);
  const draws: AugmentDraw[] = [];
  for (let i = 0; i < size; i++) {
    const dy = opts.crop ? rng.int(2 * CROP_PADDING + 1) - CROP_PADDING : 0;
    const dx = opts.crop ? rng.int(2 * CROP_PADDING + 1) - CROP_PADDING : 0;
    const flip = opts.flip ? rng.next() < 0.5 : false;
    draws.push({ dy, dx, flip });
    if (dy === 0 && dx === 0 && !flip) continue;
    const base = i * dim;
    src.set(x.subarray(base, base + dim));
    for (let h = 0; h < H; h++) {
      const row = base + h * rowLength, sh = h + dy;
      if (sh < 0 || sh >= H) {
        x.fill(0, row, row + rowLength);
        continue;
      }
      for (let w = 0; w < W; w++) {
        const sw = (flip ? W - 1 - w : w) + dx, out = row + w * C;
        if (sw < 0 || sw >= W) {
          x.fill(0, out, out + C);
        } else {
          const from = (sh * W + sw) * C;
          for (let c = 0; c < C; c++) x[out + c] = src[from + c];
        }
      }
    }
  }
  return draws;
}
