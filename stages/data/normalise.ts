/**
 * Input normalisation: `(x - mean) / std` with statistics fitted on the training split only, so
 * the held-out split is transformed exactly as unseen data would be.
 *
 * @module
 */

import { DataError } from "./errors.ts";
import type { Dataset } from "./types.ts";

/**
 * Per-channel (images) or per-feature (CSV) mean and standard deviation of the TRAIN split.
 * Both arrays have one entry per `Dataset.channels`; feature `j` of every example belongs to
 * channel `j % channels` (channels last: for an HWC image, the colour channel of the pixel; for
 * CSV, where `channels === dim`, the feature itself).
 */
export interface Normalisation {
  /** Mean of each channel (or feature). */
  mean: Float32Array;
  /** Population standard deviation of each channel (or feature), at least {@link STD_FLOOR}. */
  std: Float32Array;
  /** True when a statistic covers several features (images), false when one feature (CSV). */
  perChannel: boolean;
}

/**
 * Smallest standard deviation used. A constant channel or feature (std 0, e.g. an always-black
 * border pixel column in a CSV) gets std 1 instead, so it normalises to 0 rather than NaN.
 */
export const STD_FLOOR = 1e-6;

/**
 * Fits the mean and std of each channel of `train` (in float64, two passes for accuracy).
 * An empty split has no statistics: a DataError.
 */
export function fitNormalisation(train: Dataset): Normalisation {
  const { channels, dim, n, x } = train;
  if (n === 0) throw new DataError(train.source, "train split", "empty dataset: no examples");
  checkChannels(train);
  const count = (n * dim) / channels;
  const sum = new Float64Array(channels);
  for (let j = 0, end = n * dim; j < end;) {
    for (let c = 0; c < channels; c++, j++) sum[c] += x[j];
  }
  const mean = sum.map((s) => s / count);
  const squares = new Float64Array(channels);
  for (let j = 0, end = n * dim; j < end;) {
    for (let c = 0; c < channels; c++, j++) squares[c] += (x[j] - mean[c]) ** 2;
  }
  const std = squares.map((s) => {
    const sd = Math.sqrt(s / count);
    return sd < STD_FLOOR ? 1 : sd;
  });
  return {
    mean: Float32Array.from(mean),
    std: Float32Array.from(std),
    perChannel: channels < dim,
  };
}

/** Returns `ds.x` normalised by `norm` as a new `[n, dim]` array; `ds` is left unchanged. */
export function normalise(ds: Dataset, norm: Normalisation): Float32Array {
  const { channels, dim, n, x } = ds;
  if (norm.mean.length !== channels || norm.std.length !== channels) {
    throw new RangeError(
      `normalisation has ${norm.mean.length} channels, dataset ${ds.name} has ${channels}`,
    );
  }
  checkChannels(ds);
  const out = new Float32Array(n * dim);
  const mean = norm.mean, inv = norm.std.map((s) => 1 / s);
  for (let j = 0, end = n * dim; j < end;) {
    for (let c = 0; c < channels; c++, j++) out[j] = (x[j] - mean[c]) * inv[c];
  }
  return out;
}

/** The layout invariants normalisation relies on (a bug in a reader, not bad data). */
function checkChannels(ds: Dataset): void {
  const { channels, dim, image } = ds;
  if (!Number.isInteger(channels) || channels < 1 || dim % channels !== 0) {
    throw new RangeError(`dataset ${ds.name}: ${channels} channels do not divide ${dim} features`);
  }
  if (image && (image.channels !== channels || image.height * image.width * channels !== dim)) {
    throw new RangeError(
      `dataset ${ds.name}: image ${image.height}×${image.width}×${image.channels} ` +
        `does not match ${dim} features in ${channels} channels`,
    );
  }
}
