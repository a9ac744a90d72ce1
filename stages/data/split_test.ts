import { heldoutIndices, splitHeldout, subset } from "./split.ts";
import { assert, assertDataError, assertEquals } from "./test_fixtures.ts";
import type { Dataset } from "./types.ts";

/** `n` one-feature examples whose feature is their index and label the index mod 3. */
const indexed = (n: number): Dataset => ({
  name: "indexed",
  x: Float32Array.from({ length: n }, (_, i) => i),
  y: Int32Array.from({ length: n }, (_, i) => i % 3),
  n,
  dim: 1,
  classes: 3,
  channels: 1,
  source: "mem.csv",
});

Deno.test("heldoutIndices: same seed same rows, different seed different rows, ascending", () => {
  const a = heldoutIndices(100, 10, 5), b = heldoutIndices(100, 10, 5);
  const c = heldoutIndices(100, 10, 6);
  assertEquals(a, b, "same seed");
  assert(a.join() !== c.join(), "different seeds should hold out different rows");
  assertEquals(a, [...a].sort((p, q) => p - q), "ascending");
  assertEquals(new Set(a).size, 10, "distinct rows");
});

Deno.test("splitHeldout: partitions the examples, both splits in file order, labels follow rows", () => {
  const { train, heldout } = splitHeldout(indexed(20), 4, 7);
  assertEquals([train.n, heldout.n, train.x.length, heldout.y.length], [16, 4, 16, 4]);
  assertEquals(heldout.x, heldoutIndices(20, 4, 7), "held-out rows are the seeded ones");
  const all = [...train.x, ...heldout.x].sort((a, b) => a - b);
  assertEquals(all, Array.from({ length: 20 }, (_, i) => i), "every example exactly once");
  assertEquals(train.y, Array.from(train.x, (v) => v % 3), "labels stay with their rows");
  assertEquals([train.name, heldout.name], ["indexed train", "indexed held-out"]);
});

Deno.test("splitHeldout: invalid held-out counts are DataErrors at the held-out split", async () => {
  for (const h of [20, 25, -1, 1.5]) {
    await assertDataError(
      () => splitHeldout(indexed(20), h, 1),
      "mem.csv",
      "held-out split",
      /cannot hold out/,
    );
  }
  assertEquals(splitHeldout(indexed(3), 0, 1).heldout.n, 0, "holding out none is allowed");
});

Deno.test("subset: copies rows in the given order", () => {
  const s = subset(indexed(5), Int32Array.from([4, 0, 2]), "s");
  assertEquals([s.x, s.y, s.n], [[4, 0, 2], [1, 0, 2], 3]);
});

Deno.test("subset and splitHeldout carry the image shape", () => {
  const image = { height: 1, width: 1, channels: 1 };
  const ds: Dataset = { ...indexed(6), image };
  const { train, heldout } = splitHeldout(ds, 2, 3);
  const s = subset(ds, Int32Array.from([1]), "s");
  assertEquals([train.image, heldout.image, s.image], [image, image, image]);
  assertEquals(splitHeldout(indexed(6), 2, 3).train.image, undefined, "flat data has none");
});
