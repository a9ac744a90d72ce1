/**
 * The data stage's in-memory dataset shapes, shared by the format readers and re-exported from
 * `dataset.ts`.
 *
 * @module
 */

/**
 * A labelled dataset in memory. `x` is row-major `[n, dim]` raw feature values (pixels 0..255 as
 * floats, CSV values as read); `y` holds `n` labels in `0..classes-1`.
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
   * Groups of features that share one normalisation statistic, each a contiguous block of
   * `dim / channels` features: 1 for IDX (grayscale), 3 for CIFAR-10 (its records are
   * channel-major: 1,024 red, then green, then blue pixels), and `dim` for CSV (every feature is
   * its own "channel", so CSV is normalised per feature).
   */
  channels: number;
  /** The file or folder the examples were read from; named in errors about this dataset. */
  source: string;
}

/** Train and held-out splits, both raw (not normalised). */
export interface Splits {
  /** The examples to train on, in file order. */
  train: Dataset;
  /** The examples held out (the test set when the source has one), in file order. */
  heldout: Dataset;
}
