/**
 * Checks of the labels before training: the training examples must have at least two classes
 * (with one, every prediction is right and the run learns nothing), and a label far above the
 * others, which makes the output layer that wide (one stray `60000` in a 3-class file gives
 * 60,001 classes), is a warning that names the label and where it is, or an error when it
 * would make more than {@link MAX_SPARSE_CLASSES} classes.
 *
 * @module
 */

import { DataError } from "./errors.ts";
import type { Dataset } from "./types.ts";

/**
 * Checks the labels of `train` and, for a source with a test split, `test`: fewer than two
 * distinct training labels is a DataError (position `labels`, in the file holding the labels).
 * Returns the warnings, one line each: the largest label is more than twice the number of
 * distinct labels (both splits); a DataError when that gives more than
 * {@link MAX_SPARSE_CLASSES} classes.
 */
export function checkLabels(train: Dataset, test?: Dataset): string[] {
  const trainLabels = new Set(train.y);
  if (trainLabels.size < 2) {
    throw new DataError(
      train.largestLabelAt?.file ?? train.source,
      "labels",
      `every label is ${train.y[0]}: training needs at least 2 classes`,
    );
  }
  const labels = test ? new Set([...trainLabels, ...test.y]) : trainLabels;
  const [largest, holder] = test && maxOf(test.y) > maxOf(train.y)
    ? [maxOf(test.y), test]
    : [maxOf(train.y), train];
  if (largest <= 2 * labels.size) return [];
  const at = holder.largestLabelAt ?? { file: holder.source, position: "labels" };
  const classes = Math.max(train.classes, test?.classes ?? 0, largest + 1);
  const problem = `label ${largest} is far above the others: ${classes} classes for ` +
    `${labels.size} distinct labels (a stray label, or the wrong label column?)`;
  // Past this width the output layer is mostly classes that never occur: refuse, rather than
  // fail later on its size.
  if (classes > MAX_SPARSE_CLASSES) throw new DataError(at.file, at.position, problem);
  return [`${at.file}: ${at.position}: ${problem}`];
}

/** More classes than this, with labels far above the distinct ones, is an error. */
export const MAX_SPARSE_CLASSES = 1024;

function maxOf(y: Int32Array): number {
  let m = -Infinity;
  for (const v of y) if (v > m) m = v;
  return m;
}
