/**
 * The loader stage: mini-batches of the normalised training set as a pull-based
 * `ReadableStream`, the fixed probe batch, and the size checks that run before training.
 *
 * Order: with `shuffle`, epoch e visits the examples in the order of a fresh identity array
 * `0..n-1` shuffled by `createRng(seed).shuffle` (core/prng.ts, Fisher-Yates), the one
 * generator continuing from epoch to epoch; without `shuffle` every epoch is in file order.
 * Batch k of an epoch holds positions `[k * batchSize, (k + 1) * batchSize)` of that order.
 *
 * Last batch: when `batchSize` does not divide `n`, `lastBatch: "drop"` skips the `n % batchSize`
 * examples left at the end of each epoch (every batch has `batchSize` examples; with shuffling
 * different examples are skipped each epoch), and `"keep"` yields them as a smaller final batch.
 *
 * Augmentation: with `augment` (image data only), each training batch, once gathered from the
 * normalised set, is flipped and/or cropped by `augmentBatch` (augment.ts) with a generator
 * `createRng(augment.seed)` of its own that continues from batch to batch; the shuffle order does
 * not depend on it. The probe batch is never augmented, nor is the held-out split. A batch is
 * NHWC like the dataset (`[size, dim]` with `dim = H × W × C`); its shape is the dataset's
 * `image`, so a batch carries no shape of its own.
 *
 * @module
 */

import { createRng } from "../../core/prng.ts";
import { augmentBatch, type AugmentOptions } from "./augment.ts";
import { DataError } from "./errors.ts";
import type { Dataset, ImageShape, Splits } from "./types.ts";

export { augmentBatch, type AugmentDraw, type AugmentOptions, CROP_PADDING } from "./augment.ts";

/**
 * One mini-batch; `x` normalised (and, with `augment`, augmented) float32 `[size, dim]` (NHWC
 * for images), `y` labels `[size]`.
 */
export interface Batch {
  /** 0-based global index of the batch across epochs (-1 for the probe batch). */
  step: number;
  /** 0-based epoch the batch belongs to (-1 for the probe batch). */
  epoch: number;
  /** Examples in the batch: `batchSize`, or fewer for a kept last batch. */
  size: number;
  /** Inputs, row-major `[size, dim]`. */
  x: Float32Array;
  /** Labels, `[size]`. */
  y: Int32Array;
}

/** How {@link batchStream} cuts the training set into batches. */
export interface LoaderOptions {
  /** Examples per batch, a positive integer. */
  batchSize: number;
  /** Passes over the training set, a non-negative integer. */
  epochs: number;
  /** Reshuffle every epoch (true) or keep the file's order (false). */
  shuffle: boolean;
  /** Seed of the shuffling generator. */
  seed: number;
  /** What to do with the last `n % batchSize` examples of an epoch; see the module comment. */
  lastBatch: "drop" | "keep";
  /** Stop after this many batches in all, even inside an epoch. */
  maxSteps?: number;
  /**
   * Start with this batch (a resumed run): the batches before it are skipped, drawing what
   * they would have drawn, so batch `startStep` and every later one are as in a run from 0.
   */
  startStep?: number;
  /** Asked before each batch: true ends the stream there (a run stopped by a signal). */
  stop?: () => boolean;
  /** Batches prepared ahead of the consumer (the stream's highWaterMark); default 2. */
  prefetch?: number;
  /** Called with a batch's step as soon as it is prepared, before it is queued. */
  onPrepare?: (step: number) => void;
  /**
   * Augmentation of every training batch (see augment.ts); needs `image`. With both `flip` and
   * `crop` false, or unset, batches are not augmented.
   */
  augment?: AugmentOptions;
  /** The training set's image shape (`Dataset.image`); `undefined` for flat (CSV) data. */
  image?: ImageShape;
  /** The training set's source (`Dataset.source`), named in DataErrors; default "training data". */
  source?: string;
}

/** Batches held ahead of the consumer unless `prefetch` says otherwise. */
export const DEFAULT_PREFETCH = 2;

/**
 * Mini-batches of the normalised training set as a stream with backpressure: pull-based with
 * highWaterMark = `prefetch`, so the next batches are prepared while the consumer (the GPU step)
 * works on the current one, and never more than `prefetch` are waiting.
 */
export function batchStream(
  x: Float32Array,
  y: Int32Array,
  dim: number,
  opts: LoaderOptions,
): ReadableStream<Batch> {
  const { batchSize, epochs, shuffle, seed, lastBatch, onPrepare } = opts;
  const prefetch = opts.prefetch ?? DEFAULT_PREFETCH;
  requireCount("batchSize", batchSize, 1);
  requireCount("epochs", epochs, 0);
  requireCount("prefetch", prefetch, 0);
  if (opts.maxSteps !== undefined) requireCount("maxSteps", opts.maxSteps, 0);
  const n = y.length;
  if (x.length !== n * dim) {
    throw new RangeError(`x has ${x.length} values, expected ${n} examples × ${dim}`);
  }
  const { augment, image } = opts;
  checkAugment({ dim, image, source: opts.source ?? "training data" }, augment);
  const augmenting = augment && image && (augment.flip || augment.crop)
    ? { augment, image, rng: createRng(augment.seed) }
    : undefined;
  const perEpoch = lastBatch === "drop" ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
  const total = Math.min(perEpoch * epochs, opts.maxSteps ?? Infinity);
  const rng = createRng(seed);
  let order = new Int32Array(0);
  let step = opts.startStep ?? 0;
  requireCount("startStep", step, 0);
  if (step > 0) {
    // Replay the shuffles of the epochs begun before `step`, and the augmentation draws of
    // every example before it (a fixed number per example, see augment.ts).
    const startEpoch = Math.floor(step / perEpoch), within = step % perEpoch;
    // An epoch's order is drawn at its first batch: the pull below draws it when within = 0.
    const begun = startEpoch + (within > 0 ? 1 : 0);
    for (let e = 0; e < begun; e++) {
      order = Int32Array.from({ length: n }, (_, i) => i);
      if (shuffle) rng.shuffle(order);
    }
    if (augmenting) {
      const { augment, rng } = augmenting;
      const perExample = (augment.crop ? 2 : 0) + (augment.flip ? 1 : 0);
      const perEpochExamples = lastBatch === "drop" ? perEpoch * batchSize : n;
      const examples = startEpoch * perEpochExamples + within * batchSize;
      for (let i = 0; i < examples * perExample; i++) rng.nextU32();
    }
  }
  return new ReadableStream<Batch>({
    pull(controller) {
      if (step >= total || opts.stop?.()) {
        controller.close();
        return;
      }
      const epoch = Math.floor(step / perEpoch);
      const first = (step % perEpoch) * batchSize;
      if (first === 0) {
        order = Int32Array.from({ length: n }, (_, i) => i);
        if (shuffle) rng.shuffle(order);
      }
      const batch = gather(x, y, dim, order.subarray(first, first + batchSize), step, epoch);
      if (augmenting) {
        const { augment, image, rng } = augmenting;
        augmentBatch(batch.x, batch.size, image, augment, rng);
      }
      onPrepare?.(step);
      controller.enqueue(batch);
      step++;
      if (step >= total) controller.close();
    },
  }, new CountQueuingStrategy({ highWaterMark: prefetch }));
}

/** Copies the examples at `rows` into a new batch. */
function gather(
  x: Float32Array,
  y: Int32Array,
  dim: number,
  rows: Int32Array,
  step: number,
  epoch: number,
): Batch {
  const bx = new Float32Array(rows.length * dim);
  const by = new Int32Array(rows.length);
  rows.forEach((r, i) => {
    bx.set(x.subarray(r * dim, (r + 1) * dim), i * dim);
    by[i] = y[r];
  });
  return { step, epoch, size: rows.length, x: bx, y: by };
}

/**
 * The fixed probe batch: the first `size` examples of the (already deterministic, normalised)
 * held-out split, copied, with step and epoch -1. Same inputs, same batch, on every call; never
 * augmented.
 */
export function probeBatch(
  heldoutX: Float32Array,
  heldoutY: Int32Array,
  dim: number,
  size: number,
): Batch {
  requireCount("probe size", size, 0);
  if (size > heldoutY.length) {
    throw new RangeError(`probe size ${size} exceeds the ${heldoutY.length} held-out examples`);
  }
  return {
    step: -1,
    epoch: -1,
    size,
    x: heldoutX.slice(0, size * dim),
    y: heldoutY.slice(0, size),
  };
}

/** The sizes {@link checkSizes} validates against the splits. */
export interface SizeRequest {
  /** Examples per training batch. */
  batchSize: number;
  /** Examples in the probe batch (0 for none). */
  probe: number;
}

/**
 * Validates sizes before training: an empty training split, a batch larger than the training
 * split, or a probe larger than the held-out split is a DataError naming the split's source.
 */
export function checkSizes(splits: Splits, sizes: SizeRequest): void {
  const { train, heldout } = splits;
  if (train.n === 0) {
    throw new DataError(train.source, "train split", "empty dataset: no training examples");
  }
  if (sizes.batchSize > train.n) {
    throw new DataError(
      train.source,
      "train split",
      `batch size ${sizes.batchSize} is larger than the ${train.n} training examples`,
    );
  }
  if (sizes.probe > heldout.n) {
    throw new DataError(
      heldout.source,
      "held-out split",
      `probe size ${sizes.probe} is larger than the ${heldout.n} held-out examples`,
    );
  }
}

/**
 * Validates an augmentation request before training: flips or crops of data without an image
 * shape (CSV) are a DataError at the train split naming its source; an image shape that does not
 * match `dim` is a RangeError (a bug, not bad data). No augmentation, or both transforms off,
 * always passes.
 */
export function checkAugment(
  train: Pick<Dataset, "dim" | "image" | "source">,
  augment: AugmentOptions | undefined,
): void {
  const { dim, image } = train;
  if (image && image.height * image.width * image.channels !== dim) {
    throw new RangeError(
      `image ${image.height}×${image.width}×${image.channels} does not match ${dim} features`,
    );
  }
  if (!augment || !(augment.flip || augment.crop)) return;
  if (!image) {
    const asked = [augment.flip && "flip", augment.crop && "crop"].filter(Boolean).join(" and ");
    throw new DataError(
      train.source,
      "train split",
      `augmentation (${asked}) needs image data (IDX or CIFAR-10); ` +
        `these examples are ${dim} flat features`,
    );
  }
}

function requireCount(what: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`${what} must be an integer >= ${min}, got ${value}`);
  }
}
