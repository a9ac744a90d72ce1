import { fitNormalisation, normalise } from "./normalise.ts";
import { assertClose, assertDataError, assertEquals } from "./test_fixtures.ts";
import type { Dataset } from "./types.ts";
import { createRng } from "../../core/prng.ts";

const dataset = (x: number[] | Float32Array, n: number, channels: number): Dataset => ({
  name: "d",
  x: Float32Array.from(x),
  y: new Int32Array(n),
  n,
  dim: x.length / n,
  classes: 1,
  channels,
  source: "d.bin",
});

/** Mean and population std of channel `c` of normalised rows. */
function moments(x: Float32Array, n: number, dim: number, channels: number, c: number) {
  const block = dim / channels;
  const values: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < block; j++) values.push(x[i * dim + c * block + j]);
  }
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance) };
}

Deno.test("fitNormalisation: per-channel statistics of a 3-channel image set", () => {
  // Two examples, 3 channels of 2 pixels each: channel c holds values around 10^c.
  const ds = dataset([1, 3, 10, 30, 100, 300, 5, 7, 50, 70, 500, 700], 2, 3);
  const norm = fitNormalisation(ds);
  assertEquals([norm.perChannel, norm.mean.length], [true, 3]);
  assertEquals(norm.mean, [4, 40, 400], "means");
  for (let c = 0; c < 3; c++) assertClose(norm.std[c], Math.sqrt(5) * 10 ** c, 1e-3, `std ${c}`);
});

Deno.test("normalise: train split gets mean 0 and std 1 per channel and per feature", () => {
  const rng = createRng(3);
  const n = 200;
  for (const [dim, channels] of [[12, 3], [5, 5], [6, 1]]) {
    const x = Float32Array.from({ length: n * dim }, (_, k) => 50 + 20 * rng.normal() + (k % dim));
    const ds = dataset(x, n, channels);
    const out = normalise(ds, fitNormalisation(ds));
    for (let c = 0; c < channels; c++) {
      const m = moments(out, n, dim, channels, c);
      assertClose(m.mean, 0, 1e-4, `dim ${dim} channel ${c} mean`);
      assertClose(m.std, 1, 1e-4, `dim ${dim} channel ${c} std`);
    }
    assertEquals(fitNormalisation(ds).perChannel, channels < dim, "perChannel");
  }
});

Deno.test("normalise: held-out data uses the train statistics; input unchanged", () => {
  const train = dataset([0, 2, 4, 6], 4, 1);
  const held = dataset([3, 7], 2, 1);
  const norm = fitNormalisation(train);
  const out = normalise(held, norm);
  assertClose(out[0], 0, 1e-6, "3 is the train mean");
  assertClose(out[1], 4 / Math.sqrt(5), 1e-6, "7 is 4 / std above it");
  assertEquals(held.x, [3, 7], "input untouched");
});

Deno.test("normalise: a constant feature becomes 0, never NaN", () => {
  const ds = dataset([5, 1, 5, 2, 5, 3], 3, 2);
  const norm = fitNormalisation(ds);
  assertEquals(norm.std[0], 1, "std floor");
  const out = normalise(ds, norm);
  assertEquals([out[0], out[2], out[4]], [0, 0, 0], "constant feature");
  assertEquals(out.every(Number.isFinite), true, "all finite");
});

Deno.test("fitNormalisation: an empty training split is a DataError", async () => {
  await assertDataError(() => fitNormalisation(dataset([], 0, 1)), "d.bin", "train split", /empty/);
});
