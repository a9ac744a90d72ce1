import { join } from "node:path";
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, loadIdx, readIdx } from "./idx.ts";
import {
  assertDataError,
  assertEquals,
  gzip,
  idxBytes,
  tempDir,
  writeData,
} from "./test_fixtures.ts";

// Three 2×3 images whose pixels are distinct, so any mix-up of order or layout shows.
const PIXELS = Array.from({ length: 18 }, (_, i) => i * 14 + 1);
const LABELS = [0, 9, 4];
const images = (dims = [3, 2, 3], body: ArrayLike<number> = PIXELS) =>
  idxBytes(IDX_IMAGES_MAGIC, dims, body);
const labels = (body: number[] = LABELS, count = body.length) =>
  idxBytes(IDX_LABELS_MAGIC, [count], body);

for (const ext of ["", ".gz"]) {
  Deno.test(`idx: reads images and labels exactly (${ext ? "gzip" : "raw"})`, async () => {
    await using tmp = await tempDir();
    const img = await writeData(join(tmp.dir, `a-images-idx3-ubyte${ext}`), images());
    const lab = await writeData(join(tmp.dir, `a-labels-idx1-ubyte${ext}`), labels());
    const ds = await loadIdx(img, lab, "tiny");
    assertEquals(
      {
        n: ds.n,
        dim: ds.dim,
        classes: ds.classes,
        channels: ds.channels,
        image: ds.image,
        source: ds.source,
      },
      {
        n: 3,
        dim: 6,
        classes: 10,
        channels: 1,
        image: { height: 2, width: 3, channels: 1 },
        source: img,
      },
    );
    assertEquals(ds.x, PIXELS, "pixels");
    assertEquals(ds.y, LABELS, "labels");
  });
}

Deno.test("idx: a gzip file is recognised by its magic even without .gz", async () => {
  await using tmp = await tempDir();
  const img = join(tmp.dir, "x-images-idx3-ubyte");
  await Deno.writeFile(img, await gzip(images()));
  assertEquals((await readIdx(img, IDX_IMAGES_MAGIC)).dims, [3, 2, 3]);
});

for (const ext of ["", ".gz"]) {
  const kind = ext ? " (gzip)" : " (raw)";
  Deno.test(`idx: truncated body${kind} names the record and byte counts`, async () => {
    await using tmp = await tempDir();
    const img = await writeData(join(tmp.dir, `t-images-idx3-ubyte${ext}`), images().slice(0, 30));
    await assertDataError(
      () => readIdx(img, IDX_IMAGES_MAGIC),
      img,
      "record 2",
      /^truncated: expected 34 bytes, got 30$/,
    );
  });

  Deno.test(`idx: truncated header${kind}`, async () => {
    await using tmp = await tempDir();
    const img = await writeData(join(tmp.dir, `h-images-idx3-ubyte${ext}`), images().slice(0, 9));
    await assertDataError(
      () => readIdx(img, IDX_IMAGES_MAGIC),
      img,
      "header",
      /^truncated: expected 16 bytes, got 9$/,
    );
  });

  Deno.test(`idx: wrong magic${kind}`, async () => {
    await using tmp = await tempDir();
    const bytes = images();
    bytes[3] = 0x02;
    const img = await writeData(join(tmp.dir, `m-images-idx3-ubyte${ext}`), bytes);
    await assertDataError(
      () => readIdx(img, IDX_IMAGES_MAGIC),
      img,
      "header",
      /^wrong magic 0x00000802, expected 0x00000803/,
    );
  });

  Deno.test(`idx: image/label count mismatch${kind}`, async () => {
    await using tmp = await tempDir();
    const img = await writeData(join(tmp.dir, `c-images-idx3-ubyte${ext}`), images());
    const lab = await writeData(join(tmp.dir, `c-labels-idx1-ubyte${ext}`), labels([1, 2]));
    await assertDataError(
      () => loadIdx(img, lab, "c"),
      lab,
      "header",
      /^count mismatch: 2 labels but 3 images/,
    );
  });

  Deno.test(`idx: bytes beyond the declared count${kind}`, async () => {
    await using tmp = await tempDir();
    const lab = await writeData(join(tmp.dir, `e-labels-idx1-ubyte${ext}`), labels(LABELS, 2));
    await assertDataError(
      () => readIdx(lab, IDX_LABELS_MAGIC),
      lab,
      "record 2",
      /^1 bytes after the 2 labels the header declares/,
    );
  });

  Deno.test(`idx: label out of range${kind}`, async () => {
    await using tmp = await tempDir();
    const img = await writeData(join(tmp.dir, `l-images-idx3-ubyte${ext}`), images());
    const lab = await writeData(join(tmp.dir, `l-labels-idx1-ubyte${ext}`), labels([3, 10, 1]));
    await assertDataError(
      () => loadIdx(img, lab, "l"),
      lab,
      "record 1",
      /^label 10 out of range 0\.\.9$/,
    );
  });

  Deno.test(`idx: empty dataset${kind}`, async () => {
    await using tmp = await tempDir();
    const img = await writeData(
      join(tmp.dir, `z-images-idx3-ubyte${ext}`),
      images([0, 28, 28], []),
    );
    await assertDataError(
      () => readIdx(img, IDX_IMAGES_MAGIC),
      img,
      "header",
      /^empty dataset: 0 images$/,
    );
  });
}

Deno.test("idx: corrupt and truncated gzip are one-line DataErrors", async () => {
  await using tmp = await tempDir();
  // Enough pixels that the gzip body spans many bytes; a flipped byte in it breaks inflation.
  const body = Array.from({ length: 50 * 28 * 28 }, (_, i) => (i * 31) % 256);
  const gz = await gzip(images([50, 28, 28], body));
  const corrupt = gz.slice();
  corrupt[Math.floor(gz.length / 2)] ^= 0xff;
  const bad = join(tmp.dir, "bad-images-idx3-ubyte.gz");
  await Deno.writeFile(bad, corrupt);
  await assertDataError(
    () => readIdx(bad, IDX_IMAGES_MAGIC),
    bad,
    /^(header|record \d+)$/,
    /^corrupt or truncated gzip data \(.+\)$/,
  );
  const cut = join(tmp.dir, "cut-images-idx3-ubyte.gz");
  await Deno.writeFile(cut, gz.slice(0, gz.length - 6));
  await assertDataError(
    () => readIdx(cut, IDX_IMAGES_MAGIC),
    cut,
    /^record \d+$/,
    /^(corrupt or truncated gzip data|truncated)/,
  );
});

Deno.test("idx: a missing file is a DataError at open", async () => {
  await using tmp = await tempDir();
  const missing = join(tmp.dir, "none-images-idx3-ubyte");
  await assertDataError(() => readIdx(missing, IDX_IMAGES_MAGIC), missing, "open", /^cannot open/);
});
