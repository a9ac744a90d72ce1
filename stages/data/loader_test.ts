import { createRng } from "../../core/prng.ts";
import { type Batch, batchStream, checkSizes, type LoaderOptions, probeBatch } from "./loader.ts";
import { assert, assertDataError, assertEquals } from "./test_fixtures.ts";
import type { Dataset } from "./types.ts";

const N = 10, DIM = 2;
// Example i has features [10i, 10i + 1] and label i % 4, so a batch's rows name its examples.
const X = Float32Array.from({ length: N * DIM }, (_, k) => 10 * Math.floor(k / DIM) + (k % DIM));
const Y = Int32Array.from({ length: N }, (_, i) => i % 4);

const options = (o: Partial<LoaderOptions> = {}): LoaderOptions => ({
  batchSize: 3,
  epochs: 1,
  shuffle: true,
  seed: 1,
  lastBatch: "keep",
  ...o,
});

async function collect(o: Partial<LoaderOptions>): Promise<Batch[]> {
  return await Array.fromAsync(batchStream(X, Y, DIM, options(o)));
}

/** The example indices of a batch, read back from its first feature. */
const rows = (b: Batch) => Array.from({ length: b.size }, (_, i) => b.x[i * DIM] / 10);

Deno.test("batchStream: shuffle false gives file order; keep yields the partial last batch", async () => {
  const batches = await collect({ shuffle: false });
  assertEquals(batches.map(rows), [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]], "rows");
  assertEquals(batches.map((b) => [b.step, b.epoch, b.size]), [[0, 0, 3], [1, 0, 3], [2, 0, 3], [
    3,
    0,
    1,
  ]]);
  for (const b of batches) {
    assertEquals(b.y, rows(b).map((i) => i % 4), `labels of step ${b.step}`);
    assertEquals(b.x, rows(b).flatMap((i) => [10 * i, 10 * i + 1]), `features of step ${b.step}`);
  }
});

Deno.test("batchStream: drop skips the partial last batch of every epoch", async () => {
  const batches = await collect({ shuffle: false, lastBatch: "drop", epochs: 2 });
  assertEquals(batches.map(rows), [[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 1, 2], [3, 4, 5], [
    6,
    7,
    8,
  ]]);
  assertEquals(batches.map((b) => b.epoch), [0, 0, 0, 1, 1, 1], "epochs");
  assertEquals(batches.map((b) => b.step), [0, 1, 2, 3, 4, 5], "global steps");
});

Deno.test("batchStream: same seed same batches, different seed different, each epoch a permutation", async () => {
  const a = await collect({ epochs: 3, seed: 42 });
  const b = await collect({ epochs: 3, seed: 42 });
  const c = await collect({ epochs: 3, seed: 43 });
  assertEquals(a, b, "same seed");
  assert(JSON.stringify(a.map(rows)) !== JSON.stringify(c.map(rows)), "different seeds differ");
  for (let e = 0; e < 3; e++) {
    const seen = a.filter((x) => x.epoch === e).flatMap(rows);
    assertEquals([...seen].sort((p, q) => p - q), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], `epoch ${e}`);
  }
  const epochOrder = (e: number) => a.filter((x) => x.epoch === e).flatMap(rows).join();
  assert(epochOrder(0) !== epochOrder(1), "epochs are reshuffled");
});

Deno.test("batchStream: the order is the documented createRng(seed) reshuffle of 0..n-1", async () => {
  const rng = createRng(9);
  const expected = [0, 1].flatMap(
    () => [...rng.shuffle(Int32Array.from({ length: N }, (_, i) => i))],
  );
  const got = (await collect({ epochs: 2, seed: 9 })).flatMap(rows);
  assertEquals(got, expected);
});

Deno.test("batchStream: maxSteps stops mid-epoch; epochs 0 or maxSteps 0 yield nothing", async () => {
  const batches = await collect({ epochs: 3, maxSteps: 5 });
  assertEquals(batches.map((b) => [b.step, b.epoch]), [[0, 0], [1, 0], [2, 0], [3, 0], [4, 1]]);
  assertEquals((await collect({ epochs: 2, maxSteps: 100 })).length, 8, "epochs bound first");
  assertEquals((await collect({ epochs: 0 })).length, 0, "no epochs");
  assertEquals((await collect({ maxSteps: 0 })).length, 0, "no steps");
});

Deno.test("batchStream: backpressure, a slow consumer never has more than prefetch batches waiting", async () => {
  for (const prefetch of [0, 1, 2, 4]) {
    let prepared = 0;
    const stream = batchStream(
      X,
      Y,
      DIM,
      options({ batchSize: 1, epochs: 5, prefetch, onPrepare: () => prepared++ }),
    );
    await new Promise((r) => setTimeout(r, 5));
    assertEquals(prepared, prefetch, `prefetch ${prefetch}: prepared ahead before any read`);
    const reader = stream.getReader();
    for (let consumed = 1; consumed <= 12; consumed++) {
      const { done } = await reader.read();
      assert(!done, "stream ended early");
      await new Promise((r) => setTimeout(r, 2)); // the "GPU step"
      assertEquals(prepared, consumed + prefetch, `prefetch ${prefetch} after ${consumed} reads`);
    }
    await reader.cancel();
  }
});

Deno.test("batchStream: invalid options are RangeErrors", () => {
  for (const bad of [{ batchSize: 0 }, { epochs: -1 }, { prefetch: 1.5 }, { maxSteps: -2 }]) {
    let thrown: unknown;
    try {
      batchStream(X, Y, DIM, options(bad));
    } catch (e) {
      thrown = e;
    }
    assert(thrown instanceof RangeError, `${JSON.stringify(bad)} should throw a RangeError`);
  }
});

Deno.test("probeBatch: the first examples of the held-out split, identical on every call", () => {
  const a = probeBatch(X, Y, DIM, 4), b = probeBatch(X, Y, DIM, 4);
  assertEquals(a, b, "repeated calls");
  assertEquals([a.step, a.epoch, a.size, rows(a), a.y], [-1, -1, 4, [0, 1, 2, 3], [0, 1, 2, 3]]);
  a.x[0] = 99;
  assertEquals(X[0], 0, "the probe is a copy");
  let thrown: unknown;
  try {
    probeBatch(X, Y, DIM, N + 1);
  } catch (e) {
    thrown = e;
  }
  assert(thrown instanceof RangeError, "a probe larger than the held-out split throws");
});

Deno.test("checkSizes: batch too large, probe too large, empty training split", async () => {
  const split = (n: number, source: string): Dataset => ({
    name: source,
    x: new Float32Array(n * DIM),
    y: new Int32Array(n),
    n,
    dim: DIM,
    classes: 4,
    channels: DIM,
    source,
  });
  const splits = { train: split(100, "train.csv"), heldout: split(20, "test.csv") };
  checkSizes(splits, { batchSize: 100, probe: 20 });
  await assertDataError(
    () => checkSizes(splits, { batchSize: 101, probe: 20 }),
    "train.csv",
    "train split",
    /^batch size 101 is larger than the 100 training examples$/,
  );
  await assertDataError(
    () => checkSizes(splits, { batchSize: 10, probe: 512 }),
    "test.csv",
    "held-out split",
    /^probe size 512 is larger than the 20 held-out examples$/,
  );
  await assertDataError(
    () => checkSizes({ ...splits, train: split(0, "train.csv") }, { batchSize: 1, probe: 0 }),
    "train.csv",
    "train split",
    /^empty dataset/,
  );
});
