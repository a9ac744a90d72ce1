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

  Deno.test(`cifar: reads records exactly, channel-major, batches in order${kind}`, async () => {
    await using tmp = await tempDir();
    const a = await writeData(join(tmp.dir, `data_batch_1.bin${ext}`), cifarBytes([3, 0], pixel));
    const b = await writeData(
      join(tmp.dir, `data_batch_2.bin${ext}`),
      cifarBytes([9], (r, i) => pixel(r + 2, i)),
    );
    const ds = await loadCifar([a, b], "tiny");
    assertEquals(
      { n: ds.n, dim: ds.dim, classes: ds.classes, channels: ds.channels, source: ds.source },
      { n: 3, dim: 3072, classes: 10, channels: 3, source: tmp.dir },
    );
    assertEquals(ds.y, [3, 0, 9], "labels");
    for (let r = 0; r < 3; r++) {
      for (const i of [0, 1, 1023, 1024, 2048, 3071]) {
        assertEquals(ds.x[r * CIFAR_IMAGE_BYTES + i], pixel(r, i), `record ${r} byte ${i}`);
      }
    }
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
