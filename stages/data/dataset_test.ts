import { join } from "node:path";
import {
  DataError,
  type DataSpec,
  DEBIAN_FASHION_MNIST_DIR,
  DEFAULT_DATA_DIR,
  fashionMnistFiles,
  fitNormalisation,
  loadData,
  normalise,
} from "./dataset.ts";
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC } from "./idx.ts";
import {
  assert,
  assertClose,
  assertDataError,
  assertEquals,
  cifarBytes,
  idxBytes,
  tempDir,
  writeData,
} from "./test_fixtures.ts";

const spec = (data: string, extra: Partial<DataSpec> = {}): DataSpec => ({
  data,
  heldout: 2,
  seed: 1,
  ...extra,
});

/** Writes an IDX pair of `n` 2×2 images (pixel = example index) with labels `i % 10`. */
async function writeIdxPair(dir: string, prefix: string, n: number, ext = ".gz") {
  const pixels = Array.from({ length: n * 4 }, (_, i) => Math.floor(i / 4));
  const labels = Array.from({ length: n }, (_, i) => i % 10);
  const images = await writeData(
    join(dir, `${prefix}-images-idx3-ubyte${ext}`),
    idxBytes(IDX_IMAGES_MAGIC, [n, 2, 2], pixels),
  );
  await writeData(
    join(dir, `${prefix}-labels-idx1-ubyte${ext}`),
    idxBytes(IDX_LABELS_MAGIC, [n], labels),
  );
  return images;
}

Deno.test("loadData default: the shipped Fashion-MNIST test set, 1,000 per class, 9,000/1,000", async () => {
  const a = await loadData({ data: "default", heldout: 1000, seed: 1 });
  const { train, heldout } = a;
  assertEquals([train.n + heldout.n, train.n, heldout.n], [10000, 9000, 1000], "sizes");
  assertEquals([train.dim, train.channels, train.classes], [784, 1, 10], "shape");
  const image = { height: 28, width: 28, channels: 1 };
  assertEquals([train.image, heldout.image], [image, image], "image shape of both splits");
  const perClass = new Array(10).fill(0);
  for (const y of [...train.y, ...heldout.y]) perClass[y]++;
  assertEquals(perClass, new Array(10).fill(1000), "examples per class");
  assert(train.x.every((v) => v >= 0 && v <= 255), "pixels in 0..255");
  assert(train.source.startsWith(DEFAULT_DATA_DIR), `source ${train.source}`);
  // The split ignores --seed: the held-out split (and so the probe batch) never changes.
  const b = await loadData({ data: "default", heldout: 1000, seed: 99 });
  assertEquals(b.heldout.y, heldout.y, "held-out labels across seeds");
  assertEquals(b.heldout.x.subarray(0, 784 * 4), heldout.x.subarray(0, 784 * 4), "held-out pixels");
  // Normalised by its own statistics, the train split has mean 0 and std 1.
  const norm = fitNormalisation(train);
  const x = normalise(train, norm);
  let sum = 0, squares = 0;
  for (const v of x) {
    sum += v;
    squares += v * v;
  }
  assertClose(sum / x.length, 0, 1e-4, "normalised mean");
  assertClose(Math.sqrt(squares / x.length), 1, 1e-4, "normalised std");
});

Deno.test("loadData fashion-mnist: the Debian package's 60,000/10,000, or an error naming it", async () => {
  const installed = await Deno.stat(DEBIAN_FASHION_MNIST_DIR).then(() => true, () => false);
  if (installed) {
    const { train, heldout } = await loadData(spec("fashion-mnist"));
    assertEquals([train.n, heldout.n, train.dim, heldout.classes], [60000, 10000, 784, 10]);
  }
  await using tmp = await tempDir();
  await assertDataError(
    () => fashionMnistFiles(join(tmp.dir, "missing")),
    join(tmp.dir, "missing", "train-images-idx3-ubyte.gz"),
    "open",
    /install the Debian package dataset-fashion-mnist/,
  );
});

Deno.test("loadData: an IDX folder with train and test uses both, heldout ignored", async () => {
  await using tmp = await tempDir();
  await writeIdxPair(tmp.dir, "train", 5);
  const test = await writeIdxPair(tmp.dir, "t10k", 3, "");
  const { train, heldout } = await loadData(spec(tmp.dir));
  assertEquals([train.n, heldout.n, heldout.source], [5, 3, test]);
  assertEquals(heldout.y, [0, 1, 2], "test labels");
  const image = { height: 2, width: 2, channels: 1 };
  assertEquals([train.image, heldout.image], [image, image], "image shape of both splits");
});

Deno.test("loadData: one IDX file, or a folder with one split, is split with a seeded permutation", async () => {
  await using tmp = await tempDir();
  const images = await writeIdxPair(tmp.dir, "train", 10);
  const labels = join(tmp.dir, "train-labels-idx1-ubyte.gz");
  const byFolder = await loadData(spec(tmp.dir));
  const byImages = await loadData(spec(images));
  const byLabels = await loadData(spec(labels));
  for (const s of [byFolder, byImages, byLabels]) {
    assertEquals([s.train.n, s.heldout.n], [8, 2], "sizes");
    assertEquals(s.heldout.y, byFolder.heldout.y, "same split whichever path names it");
  }
  // Both splits keep file order: pixel value = example index, so rows ascend.
  const rows = (x: Float32Array) => Array.from({ length: x.length / 4 }, (_, i) => x[i * 4]);
  const trainRows = rows(byFolder.train.x), heldRows = rows(byFolder.heldout.x);
  assertEquals([...trainRows, ...heldRows].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assertEquals(trainRows, [...trainRows].sort((a, b) => a - b), "train in file order");
});

Deno.test("loadData: a lone IDX file without its partner is a DataError", async () => {
  await using tmp = await tempDir();
  const images = await writeData(
    join(tmp.dir, "x-images-idx3-ubyte"),
    idxBytes(IDX_IMAGES_MAGIC, [1, 1, 1], [0]),
  );
  await assertDataError(() => loadData(spec(images)), images, "header", /without its labels file/);
});

Deno.test("loadData: a CIFAR-10 folder uses data_batch_N as train and test_batch as test", async () => {
  await using tmp = await tempDir();
  await writeData(join(tmp.dir, "data_batch_2.bin"), cifarBytes([2, 3], () => 2));
  await writeData(join(tmp.dir, "data_batch_1.bin.gz"), cifarBytes([0, 1], () => 1));
  await writeData(join(tmp.dir, "test_batch.bin"), cifarBytes([9], () => 9));
  await writeData(join(tmp.dir, "batches.meta.txt"), new TextEncoder().encode("airplane\n"));
  const { train, heldout } = await loadData(spec(tmp.dir));
  assertEquals([train.y, heldout.y, train.channels, train.dim], [[0, 1, 2, 3], [9], 3, 3072]);
  const image = { height: 32, width: 32, channels: 3 };
  assertEquals([train.image, heldout.image], [image, image], "image shape of both splits");
  assertEquals([train.x[0], train.x[3072 * 2]], [1, 2], "batch 1 before batch 2");
  const single = await loadData(spec(join(tmp.dir, "data_batch_2.bin"), { heldout: 1 }));
  assertEquals([single.train.n, single.heldout.n], [1, 1]);
});

Deno.test("loadData: CSV train/test folder, and a single CSV split; classes agree", async () => {
  await using tmp = await tempDir();
  const enc = (s: string) => new TextEncoder().encode(s);
  await writeData(join(tmp.dir, "mnist_train.csv"), enc("label,a\n0,1\n1,2\n0,3\n"));
  await writeData(join(tmp.dir, "mnist_test.csv.gz"), enc("label,a\n4,5\n"));
  const { train, heldout } = await loadData(spec(tmp.dir));
  assertEquals([train.n, heldout.n, train.classes, heldout.classes], [3, 1, 5, 5]);
  const one = await loadData(spec(join(tmp.dir, "mnist_train.csv"), { heldout: 1 }));
  assertEquals([one.train.n, one.heldout.n, one.train.dim], [2, 1, 1]);
  assertEquals([train.image, heldout.image, one.train.image], [undefined, undefined, undefined]);
});

Deno.test("loadData: detection errors name the path", async () => {
  await using tmp = await tempDir();
  const missing = join(tmp.dir, "nope");
  await assertDataError(() => loadData(spec(missing)), missing, "open", /no such file or folder/);
  await assertDataError(() => loadData(spec(tmp.dir)), tmp.dir, "folder", /no dataset found/);
  const odd = await writeData(join(tmp.dir, "data.xyz"), new Uint8Array([1, 2, 3, 4, 5]));
  await assertDataError(() => loadData(spec(odd)), odd, "header", /unrecognised format/);
  await Deno.remove(odd);
  await writeData(join(tmp.dir, "a.csv"), new TextEncoder().encode("1,2\n"));
  await writeData(join(tmp.dir, "test_batch.bin"), cifarBytes([1], () => 0));
  await assertDataError(() => loadData(spec(tmp.dir)), tmp.dir, "folder", /CIFAR-10, CSV/);
});

Deno.test("loadData: holding out everything, or a mismatched test split, is a DataError", async () => {
  await using tmp = await tempDir();
  const images = await writeIdxPair(tmp.dir, "train", 3);
  await assertDataError(
    () => loadData(spec(images, { heldout: 3 })),
    images,
    "held-out split",
    /cannot hold out 3 of 3 examples/,
  );
  const test = await writeData(
    join(tmp.dir, "t10k-images-idx3-ubyte"),
    idxBytes(IDX_IMAGES_MAGIC, [1, 3, 3], new Array(9).fill(0)),
  );
  await writeData(join(tmp.dir, "t10k-labels-idx1-ubyte"), idxBytes(IDX_LABELS_MAGIC, [1], [0]));
  const error = await assertDataError(
    () => loadData(spec(tmp.dir)),
    test,
    "header",
    /test examples have 9 features/,
  );
  assert(error instanceof DataError, "DataError re-exported from dataset.ts");
});

Deno.test("loadData: a test split of another image shape with as many pixels is a DataError", async () => {
  await using tmp = await tempDir();
  await writeIdxPair(tmp.dir, "train", 3); // 2×2
  const test = await writeData(
    join(tmp.dir, "t10k-images-idx3-ubyte"),
    idxBytes(IDX_IMAGES_MAGIC, [1, 1, 4], [0, 0, 0, 0]),
  );
  await writeData(join(tmp.dir, "t10k-labels-idx1-ubyte"), idxBytes(IDX_LABELS_MAGIC, [1], [0]));
  await assertDataError(
    () => loadData(spec(tmp.dir)),
    test,
    "header",
    /^test images are 1×4×1, training images 2×2×1$/,
  );
});

Deno.test("loadData: training data with one class is a DataError naming the file", async () => {
  await using tmp = await tempDir();
  const enc = (s: string) => new TextEncoder().encode(s);
  const one = await writeData(join(tmp.dir, "one.csv"), enc("label,a\n3,1\n3,2\n3,3\n3,4\n"));
  await assertDataError(() => loadData(spec(one)), one, "labels", /every label is 3.*at least 2/);
  // A train/test folder: the training file alone must have two classes.
  const dir = join(tmp.dir, "split");
  await Deno.mkdir(dir);
  const train = await writeData(join(dir, "x_train.csv"), enc("label,a\n0,1\n0,2\n0,3\n"));
  await writeData(join(dir, "x_test.csv"), enc("label,a\n1,5\n0,6\n"));
  await assertDataError(() => loadData(spec(dir)), train, "labels", /every label is 0/);
});

Deno.test("loadData: a stray large label is a warning naming it and its place, past 1024 classes an error", async () => {
  await using tmp = await tempDir();
  const enc = (s: string) => new TextEncoder().encode(s);
  const file = (stray: number) =>
    ["label,a", "0,1", "1,2", "2,3", "", `${stray},4`, "0,5", "1,6", "2,7"].join("\n") + "\n";
  const stray = await writeData(join(tmp.dir, "stray.csv"), enc(file(1023)));
  const splits = await loadData(spec(stray));
  assertEquals(splits.warnings?.length, 1, "one warning");
  const [warning] = splits.warnings!;
  assert(!/[\r\n]/.test(warning), `warning "${warning}" should be one line`);
  assert(warning.startsWith(`${stray}: line 6: label 1023`), `warning "${warning}"`);
  assert(warning.includes("1024 classes") && warning.includes("4 distinct"), warning);
  await writeData(stray, enc(file(60000)));
  await assertDataError(
    () => loadData(spec(stray)),
    stray,
    "line 6",
    /label 60000 .*60001 classes/,
  );
  // Labels 0..2 with a test file: no warning; the test file's own stray label is found there.
  const dir = join(tmp.dir, "split");
  await Deno.mkdir(dir);
  await writeData(join(dir, "x_train.csv"), enc("label,a\n0,1\n1,2\n2,3\n"));
  const test = await writeData(join(dir, "x_test.csv.gz"), enc("label,a\n1,5\n0,6\n"));
  assertEquals((await loadData(spec(dir))).warnings, [], "dense labels: no warning");
  await writeData(test, enc("label,a\n1,5\n\n900,6\n"));
  const [inTest] = (await loadData(spec(dir))).warnings!;
  assert(inTest?.startsWith(`${test}: line 4: label 900`), `warning "${inTest}"`);
});

Deno.test("loadData: IDX labels: one class is an error, a sparse set names the record", async () => {
  await using tmp = await tempDir();
  const pair = async (name: string, labels: number[]) => {
    const n = labels.length;
    const images = await writeData(
      join(tmp.dir, `${name}-images-idx3-ubyte`),
      idxBytes(IDX_IMAGES_MAGIC, [n, 1, 1], new Array(n).fill(0)),
    );
    const file = await writeData(
      join(tmp.dir, `${name}-labels-idx1-ubyte`),
      idxBytes(IDX_LABELS_MAGIC, [n], labels),
    );
    return { images, file };
  };
  const one = await pair("one", [4, 4, 4, 4]);
  await assertDataError(() => loadData(spec(one.images)), one.file, "labels", /every label is 4/);
  const sparse = await pair("sparse", [0, 1, 0, 9, 9, 1]);
  const { warnings } = await loadData(spec(sparse.images));
  assert(warnings?.[0]?.startsWith(`${sparse.file}: record 3: label 9`), `${warnings}`);
});
