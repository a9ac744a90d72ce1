import { join } from "node:path";
import { CIFAR_IMAGE_BYTES, loadCifar } from "./cifar.ts";
import {
  assertDataError,
  assertEquals,
  cifarBytes,
  gzip,
  tempDir,
  writeData,
} from "./test_fixtures.ts";

// A pixel value that encodes record and byte, so misplaced bytes are caught.
const pixel = (r: number, b: number) => (r * 7 + b * 3) % 251;

for (const ext of ["", ".gz"]) {
  const kind = ext ? " (gzip)" : " (raw)";

  Deno.test(`cifar: reads records exactly, transposed to HWC, batches in order${kind}`, async () => {
    await using tmp = await tempDir();
    const a = await writeData(join(tmp.dir, `data_batch_1.bin${ext}`), cifarBytes([3, 0], pixel));
    const b = await writeData(
      join(tmp.dir, `data_batch_2.bin${ext}`),
      cifarBytes([9], (r, i) => pixel(r + 2, i)),
    );
    const ds = await loadCifar([a, b], "tiny");
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
        dim: 3072,
        classes: 10,
        channels: 3,
        image: { height: 32, width: 32, channels: 3 },
        source: tmp.dir,
      },
    );
    assertEquals(ds.y, [3, 0, 9], "labels");
    // Every element: x[n, h, w, c] (NHWC) is the file's byte c * 1024 + h * 32 + w (CHW).
    const expected = new Float32Array(3 * CIFAR_IMAGE_BYTES);
    for (let r = 0; r < 3; r++) {
      for (let h = 0; h < 32; h++) {
        for (let w = 0; w < 32; w++) {
          for (let c = 0; c < 3; c++) {
            expected[((r * 32 + h) * 32 + w) * 3 + c] = pixel(r, c * 1024 + h * 32 + w);
          }
        }
      }
    }
    assertEquals(ds.x, expected, "NHWC pixels");
    // Spot checks, spelt out: record 1, pixel (h 5, w 7): red, green, blue.
    const at = (r: number, h: number, w: number, c: number) =>
      ds.x[((r * 32 + h) * 32 + w) * 3 + c];
    assertEquals(
      [at(1, 5, 7, 0), at(1, 5, 7, 1), at(1, 5, 7, 2)],
      [pixel(1, 167), pixel(1, 1024 + 167), pixel(1, 2048 + 167)],
      "record 1 pixel (5, 7)",
    );
  });

  Deno.test(`cifar: truncated last record${kind}`, async () => {
    await using tmp = await tempDir();
    const bytes = cifarBytes([1, 2], pixel).slice(0, 3073 + 100);
    const f = await writeData(join(tmp.dir, `data_batch_1.bin${ext}`), bytes);
    await assertDataError(
      () => loadCifar([f], "t"),
      f,
      "record 1",
      /^truncated: expected 6146 bytes, got 3173$/,
    );
  });

  Deno.test(`cifar: label out of range${kind}`, async () => {
    await using tmp = await tempDir();
    const f = await writeData(
      join(tmp.dir, `test_batch.bin${ext}`),
      cifarBytes([1, 2, 10], pixel),
    );
    await assertDataError(() => loadCifar([f], "l"), f, "record 2", /^label 10 out of range/);
  });

  Deno.test(`cifar: empty file${kind}`, async () => {
    await using tmp = await tempDir();
    const f = await writeData(join(tmp.dir, `data_batch_1.bin${ext}`), new Uint8Array(0));
    await assertDataError(() => loadCifar([f], "e"), f, "record 0", /^empty dataset/);
  });
}

Deno.test("cifar: corrupt gzip is a DataError naming a record", async () => {
  await using tmp = await tempDir();
  const gz = await gzip(cifarBytes([1, 2, 3, 4], (r, b) => (r * b * 13) % 256));
  gz[Math.floor(gz.length / 2)] ^= 0xff;
  const f = join(tmp.dir, "data_batch_1.bin.gz");
  await Deno.writeFile(f, gz);
  await assertDataError(
    () => loadCifar([f], "c"),
    f,
    /^record \d+$/,
    /^corrupt or truncated gzip data/,
  );
});
