/**
 * The data stage's entry point: turns a `--data` value into raw train and held-out splits, and
 * re-exports the types, the error and the normalisation the rest of the trainer uses.
 *
 * Sources:
 * - `"default"`: the Fashion-MNIST test set shipped in `data/fashion-mnist/` (10,000 images),
 *   split 9,000 / 1,000 (with `heldout` 1000) by a permutation with the fixed
 *   {@link DEFAULT_SPLIT_SEED}, never `--seed`, so the held-out split and the probe batch are the
 *   same in every run;
 * - `"fashion-mnist"`: the full set from Debian's `dataset-fashion-mnist` package, its 60,000
 *   training images to train on and its 10,000 test images held out;
 * - a path: see `detect.ts`. When it has a train and a test split they are used as they are;
 *   otherwise `heldout` examples are held out by a permutation drawn with `DataSpec.seed`.
 *
 * @module
 */

import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadCifar } from "./cifar.ts";
import { loadCsv } from "./csv.ts";
import { detectSource, type SourceFiles, type SplitFiles } from "./detect.ts";
import { DataError } from "./errors.ts";
import { loadIdx } from "./idx.ts";
import { checkLabels } from "./labels.ts";
import { DEFAULT_SPLIT_SEED, splitHeldout } from "./split.ts";
import type { Dataset, ImageShape, Splits } from "./types.ts";

export { DataError } from "./errors.ts";
export { type AugmentOptions, checkAugment, checkSizes, type SizeRequest } from "./loader.ts";
export { fitNormalisation, type Normalisation, normalise, STD_FLOOR } from "./normalise.ts";
export { DEFAULT_SPLIT_SEED } from "./split.ts";
export type { Dataset, ImageShape, Splits } from "./types.ts";

/** What data to load and how to split it. */
export interface DataSpec {
  /** `"default"`, `"fashion-mnist"`, or a file or folder path (write `./default` for a folder so named). */
  data: string;
  /** Examples held out when the source has no separate test split (1000 gives 9,000 / 1,000 on the default). */
  heldout: number;
  /**
   * Seed of the held-out permutation of a path without a test split. Not used for `"default"`
   * (fixed seed) nor for sources with a test split. Pass a constant, not `--seed`, to keep the
   * probe batch identical across runs that differ in `--seed`.
   */
  seed: number;
  /** CSV label column: header name or 0-based index (negative from the end); see `csv.ts`. */
  labelColumn?: string | number;
  /** CSV header row: present, absent, or `"auto"` (default) to recognise it. */
  header?: boolean | "auto";
}

/** Folder of the shipped default data (Fashion-MNIST's test set), found relative to this module. */
export const DEFAULT_DATA_DIR: string = fileURLToPath(
  new URL("../../data/fashion-mnist/", import.meta.url),
);

/** The `--data` values that name a dataset rather than a path. */
export const NAMED_DATASETS: ReadonlySet<string> = new Set(["default", "fashion-mnist"]);

/** Where Debian's `dataset-fashion-mnist` package installs the full Fashion-MNIST. */
export const DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

/** The Fashion-MNIST file names, shared by the shipped copy and the Debian package. */
const FASHION_MNIST = {
  trainImages: "train-images-idx3-ubyte.gz",
  trainLabels: "train-labels-idx1-ubyte.gz",
  testImages: "t10k-images-idx3-ubyte.gz",
  testLabels: "t10k-labels-idx1-ubyte.gz",
};

/**
 * Loads the data `spec` names and returns its raw splits; any problem is a DataError, among them
 * training data of one class. A sparse label set (a stray large label) is one of the `warnings`.
 */
export async function loadData(spec: DataSpec): Promise<Splits> {
  if (spec.data === "default") {
    const all = await loadIdx(
      join(DEFAULT_DATA_DIR, FASHION_MNIST.testImages),
      join(DEFAULT_DATA_DIR, FASHION_MNIST.testLabels),
      "fashion-mnist t10k (shipped)",
    );
    const warnings = checkLabels(all);
    return { ...splitHeldout(all, spec.heldout, DEFAULT_SPLIT_SEED), warnings };
  }
  const files = spec.data === "fashion-mnist"
    ? await fashionMnistFiles(DEBIAN_FASHION_MNIST_DIR)
    : await detectSource(spec.data);
  const name = spec.data === "fashion-mnist" ? "fashion-mnist" : basename(spec.data);
  const train = await loadSplit(files.train, spec, name);
  if (!files.test) {
    const warnings = checkLabels(train);
    return { ...splitHeldout(train, spec.heldout, spec.seed), warnings };
  }
  const test = await loadSplit(files.test, spec, name, train.dim + 1);
  if (test.dim !== train.dim || test.channels !== train.channels) {
    throw new DataError(
      test.source,
      "header",
      `test examples have ${test.dim} features in ${test.channels} channels, ` +
        `training examples ${train.dim} in ${train.channels}`,
    );
  }
  if (shape(test.image) !== shape(train.image)) {
    throw new DataError(
      test.source,
      "header",
      `test images are ${shape(test.image)}, training images ${shape(train.image)}`,
    );
  }
  const warnings = checkLabels(train, test);
  // CSV classes come from the labels seen; both splits must agree on the output width.
  const classes = Math.max(train.classes, test.classes);
  return {
    train: { ...train, name: `${name} train`, classes },
    heldout: { ...test, name: `${name} test`, classes },
    warnings,
  };
}

/** An image shape as `H×W×C` (`flat` for data without one), for comparisons and messages. */
function shape(image: ImageShape | undefined): string {
  return image ? `${image.height}×${image.width}×${image.channels}` : "flat";
}

/**
 * The full Fashion-MNIST in `dir` (train 60,000 and test 10,000, gzipped IDX). Missing files are
 * a DataError that names the Debian package to install.
 */
export async function fashionMnistFiles(dir: string): Promise<SourceFiles> {
  const paths = Object.values(FASHION_MNIST).map((f) => join(dir, f));
  for (const p of paths) {
    try {
      await Deno.stat(p);
    } catch {
      throw new DataError(
        p,
        "open",
        "Fashion-MNIST is not installed: install the Debian package dataset-fashion-mnist " +
          "(apt install dataset-fashion-mnist), or omit --data to use the shipped test set",
      );
    }
  }
  const [trainImages, trainLabels, testImages, testLabels] = paths;
  return {
    train: { format: "idx", images: trainImages, labels: trainLabels },
    test: { format: "idx", images: testImages, labels: testLabels },
  };
}

/** Reads one split's files; `csvCells` fixes a CSV test file's width to its train file's. */
function loadSplit(
  files: SplitFiles,
  spec: DataSpec,
  name: string,
  csvCells?: number,
): Promise<Dataset> {
  switch (files.format) {
    case "idx":
      return loadIdx(files.images, files.labels, name);
    case "cifar":
      return loadCifar(files.batches, name);
    case "csv":
      return loadCsv(
        files.file,
        { labelColumn: spec.labelColumn, header: spec.header },
        name,
        csvCells,
      );
  }
}
