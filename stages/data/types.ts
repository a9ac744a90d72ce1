/**
 * The data stage's in-memory dataset shapes, shared by the format readers and re-exported from
 * `dataset.ts`.
 *
 * @module
 */

/**
 * The shape of one image example. Images are stored channels last (NHWC for a set of `n`):
 * element (h, w, c) of an example is feature `(h * width + w) * channels + c`.
 */
export interface ImageShape {
  /** Rows of pixels. */
  height: number;
  /** Pixels per row. */
  width: number;
  /** Values per pixel: 1 (grayscale) or 3 (red, green, blue). */
  channels: number;
}

/**
 * A labelled dataset in memory. `x` is row-major `[n, dim]` raw feature values (pixels 0..255 as
 * floats, CSV values as read); `y` holds `n` labels in `0..classes-1`. For image data (`image`
 * present) each row is one image in HWC order, so `x` as a whole is NHWC: element (i, h, w, c) is
 * `x[((i * height + h) * width + w) * channels + c]`.
 */
export interface Dataset {
  /** Human-readable name, e.g. `fashion-mnist t10k (shipped) train`. */
  name: string;
  /** Raw features, row-major `[n, dim]`. */
  x: Float32Array;
  /** Labels, `[n]`. */
  y: Int32Array;
  /** Number of examples. */
  n: number;
  /** Features per example. */
  dim: number;
  /** Number of classes: 10 for IDX and CIFAR-10, the largest label + 1 for CSV. */
  classes: number;
  /**
   * Groups of features that share one normalisation statistic; feature `j` of an example belongs
   * to group `j % channels` (the layout is channels last). For images this is the number of
   * colour channels, `image.channels`: 1 for IDX (grayscale), 3 for CIFAR-10 (red, green, blue,
   * interleaved per pixel). For CSV it is `dim`: every feature is its own "channel", so CSV is
   * normalised per feature.
   */
  channels: number;
  /**
   * The image shape, present for image data only (IDX: the header's rows × columns × 1; CIFAR-10:
   * 32 × 32 × 3), absent for CSV (flat features). When present,
   * `height * width * channels === dim` and `image.channels === channels`.
   */
  image?: ImageShape;
  /** The file or folder the examples were read from; named in errors about this dataset. */
  source: string;
  /**
   * Where the first example with the largest label is: its file and position (`line N` for CSV,
   * `record N` for IDX and CIFAR-10), for the label checks' messages. Set by the loaders.
   */
  largestLabelAt?: { file: string; position: string };
}

/** Train and held-out splits, both raw (not normalised). */
export interface Splits {
  /** The examples to train on, in file order. */
  train: Dataset;
  /** The examples held out (the test set when the source has one), in file order. */
  heldout: Dataset;
  /**
   * Problems with the data that do not stop the run (e.g. a stray large label), one line each
   * as `<file>: <position>: <problem>`, for the caller to log as warnings.
   */
  warnings?: string[];
}
