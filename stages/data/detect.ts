/**
 * Format detection: which files of a `--data` path hold which split, in which format.
 *
 * A file is recognised by its magic number when it has one (IDX; gzip is looked through), and
 * otherwise by its name: `*-images-idx3-ubyte` / `*-labels-idx1-ubyte` (IDX), `*.bin` (CIFAR-10),
 * `*.csv` (CSV), each optionally with `.gz`. In a folder:
 * - IDX: an images file and its labels file per split; names starting with `t10k` or containing
 *   `test` are the test split, the others the train split;
 * - CIFAR-10: `data_batch_N.bin` (train, in order of N) and `test_batch.bin` (test);
 * - CSV: one `.csv` file, or one whose name contains `train` and one containing `test`.
 * A folder must hold exactly one of these formats.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { ByteReader, openDataStream } from "./byte_stream.ts";
import { DataError } from "./errors.ts";
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC } from "./idx.ts";

/** The files of one split and how to read them. */
export type SplitFiles =
  | { format: "idx"; images: string; labels: string }
  | { format: "cifar"; batches: string[] }
  | { format: "csv"; file: string };

/** What a path holds: a train split and, when the source has one, a separate test split. */
export interface SourceFiles {
  train: SplitFiles;
  test?: SplitFiles;
}

const IDX_IMAGES_NAME = /idx3[-._]ubyte(\.gz)?$/i;
const IDX_LABELS_NAME = /idx1[-._]ubyte(\.gz)?$/i;
const CIFAR_TRAIN_NAME = /^data_batch_(\d+)\.bin(\.gz)?$/i;
const CIFAR_TEST_NAME = /^test_batch\.bin(\.gz)?$/i;
const CIFAR_NAME = /\.bin(\.gz)?$/i;
const CSV_NAME = /\.csv(\.gz)?$/i;
const TEST_NAME = /^t10k|test/i;

/** Finds the dataset files at `path`, a file or a folder; nothing found is a DataError. */
export async function detectSource(path: string): Promise<SourceFiles> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    throw new DataError(path, "open", "no such file or folder");
  }
  return info.isDirectory ? await detectFolder(path) : { train: await detectFile(path) };
}

/** Recognises a single file; an IDX file is paired with its partner in the same folder. */
async function detectFile(path: string): Promise<SplitFiles> {
  const magic = await firstWord(path);
  const name = basename(path);
  if (magic === IDX_IMAGES_MAGIC || (magic !== IDX_LABELS_MAGIC && IDX_IMAGES_NAME.test(name))) {
    return { format: "idx", images: path, labels: await partner(path, "images", "labels") };
  }
  if (magic === IDX_LABELS_MAGIC || IDX_LABELS_NAME.test(name)) {
    return { format: "idx", images: await partner(path, "labels", "images"), labels: path };
  }
  if (CIFAR_NAME.test(name)) return { format: "cifar", batches: [path] };
  if (CSV_NAME.test(name)) return { format: "csv", file: path };
  throw new DataError(
    path,
    "header",
    "unrecognised format: expected IDX (magic 0x00000803 or 0x00000801), " +
      "CIFAR-10 binary (*.bin) or CSV (*.csv), optionally gzipped",
  );
}

/** The first 4 (decompressed) bytes as a big-endian number, or -1 for a shorter file. */
async function firstWord(path: string): Promise<number> {
  const reader = new ByteReader(path, await openDataStream(path));
  const word = new Uint8Array(4);
  try {
    const got = await reader.readInto(word, () => "header");
    return got < 4 ? -1 : new DataView(word.buffer).getUint32(0);
  } finally {
    await reader.cancel();
  }
}

/** The IDX file paired with `path`: its name with images↔labels and idx3↔idx1 swapped. */
async function partner(
  path: string,
  from: "images" | "labels",
  to: "images" | "labels",
): Promise<string> {
  const swapped = basename(path)
    .replace(new RegExp(from, "i"), to)
    .replace(/idx[13]/i, to === "labels" ? "idx1" : "idx3")
    .replace(/\.gz$/i, "");
  const candidates = [swapped, `${swapped}.gz`].map((n) => join(dirname(path), n));
  for (const c of candidates) if (await isFile(c)) return c;
  throw new DataError(
    path,
    "header",
    `IDX ${from} file without its ${to} file: looked for ${candidates.join(" and ")}`,
  );
}

/** Whether `path` exists and is a regular file. */
async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** Recognises the dataset in a folder; see the module comment for the naming rules. */
async function detectFolder(dir: string): Promise<SourceFiles> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) if (entry.isFile) names.push(entry.name);
  names.sort();
  const found: [string, SourceFiles][] = [];
  const idx = idxInFolder(dir, names);
  if (idx) found.push(["IDX", idx]);
  const cifar = cifarInFolder(dir, names);
  if (cifar) found.push(["CIFAR-10", cifar]);
  const csv = csvInFolder(dir, names);
  if (csv) found.push(["CSV", csv]);
  if (found.length === 0) {
    throw new DataError(
      dir,
      "folder",
      "no dataset found: expected IDX (*-images-idx3-ubyte with *-labels-idx1-ubyte), " +
        "CIFAR-10 (data_batch_N.bin, test_batch.bin) or CSV (*.csv) files",
    );
  }
  if (found.length > 1) {
    throw new DataError(
      dir,
      "folder",
      `holds more than one format (${found.map(([f]) => f).join(", ")}); pass one file instead`,
    );
  }
  return found[0][1];
}

/** IDX image files by split; each must have its labels file in the folder. */
function idxInFolder(dir: string, names: string[]): SourceFiles | null {
  const images = preferRaw(names.filter((n) => IDX_IMAGES_NAME.test(n)));
  const labels = new Set(names.filter((n) => IDX_LABELS_NAME.test(n)));
  if (images.length === 0 && labels.size === 0) return null;
  const pairOf = (img: string): SplitFiles => {
    const base = img.replace(/images/i, "labels").replace(/idx3/i, "idx1").replace(/\.gz$/i, "");
    const label = [base, `${base}.gz`].find((n) => labels.has(n));
    if (!label) {
      throw new DataError(join(dir, img), "header", `IDX images file without its labels ${base}`);
    }
    return { format: "idx", images: join(dir, img), labels: join(dir, label) };
  };
  const split = (test: boolean): SplitFiles | undefined => {
    const chosen = images.filter((n) => TEST_NAME.test(n) === test);
    if (chosen.length > 1) {
      throw new DataError(dir, "folder", `more than one IDX images file: ${chosen.join(", ")}`);
    }
    return chosen.length ? pairOf(chosen[0]) : undefined;
  };
  const train = split(false), test = split(true);
  if (!train && !test) {
    throw new DataError(dir, "folder", `IDX labels without images: ${[...labels].join(", ")}`);
  }
  return train && test ? { train, test } : { train: (train ?? test)! };
}

/** CIFAR-10 batches: `data_batch_N.bin` in order of N for train, `test_batch.bin` for test. */
function cifarInFolder(dir: string, names: string[]): SourceFiles | null {
  const batchNumber = (n: string) => Number(CIFAR_TRAIN_NAME.exec(n)![1]);
  const train = preferRaw(names.filter((n) => CIFAR_TRAIN_NAME.test(n)))
    .sort((a, b) => batchNumber(a) - batchNumber(b));
  const test = preferRaw(names.filter((n) => CIFAR_TEST_NAME.test(n)));
  const files = (list: string[]): SplitFiles => ({
    format: "cifar",
    batches: list.map((n) => join(dir, n)),
  });
  if (train.length && test.length) return { train: files(train), test: files(test) };
  if (train.length || test.length) return { train: files(train.length ? train : test) };
  return null;
}

/** One CSV file, or a train file and a test file. */
function csvInFolder(dir: string, names: string[]): SourceFiles | null {
  const csvs = preferRaw(names.filter((n) => CSV_NAME.test(n)));
  if (csvs.length === 0) return null;
  const file = (n: string): SplitFiles => ({ format: "csv", file: join(dir, n) });
  if (csvs.length === 1) return { train: file(csvs[0]) };
  const train = csvs.filter((n) => /train/i.test(n));
  const test = csvs.filter((n) => /test/i.test(n) && !/train/i.test(n));
  if (csvs.length === 2 && train.length === 1 && test.length === 1) {
    return { train: file(train[0]), test: file(test[0]) };
  }
  throw new DataError(
    dir,
    "folder",
    `more than one CSV file (${csvs.join(", ")}); pass one file, or keep one *train*.csv ` +
      "and one *test*.csv",
  );
}

/** Drops `x.gz` when `x` is also present (the same data, cheaper to read uncompressed). */
function preferRaw(names: string[]): string[] {
  const set = new Set(names);
  return names.filter((n) => !(n.toLowerCase().endsWith(".gz") && set.has(n.slice(0, -3))));
}
