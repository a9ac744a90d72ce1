import { fitNormalisation, normalise } from "./normalise.ts";
import { splitHeldout } from "./split.ts";
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

/** Mean and population std of channel `c` (features `j` with `j % channels === c`) of rows. */
function moments(x: Float32Array, n: number, dim: number, channels: number, c: number) {
  const values: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = c; j < dim; j += channels) values.push(x[i * dim + j]);
  }
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance) };
}

Deno.test("fitNormalisation: per-channel statistics of a 3-channel HWC image set", () => {
  // Two examples of 2 pixels × 3 channels, channels last: channel c holds values around 10^c.
  const ds = dataset([1, 10, 100, 3, 30, 300, 5, 50, 500, 7, 70, 700], 2, 3);
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

Deno.test("normalise: HWC images, mean 0 and std 1 per channel on the training split", () => {
  // 6×5 RGB images whose channels have very different statistics; loaded through splitHeldout
  // so the statistics come from the training split only.
  const rng = createRng(11);
  const image = { height: 6, width: 5, channels: 3 };
  const dim = 6 * 5 * 3, n = 300;
  const means = [0, 100, -50], stds = [1, 10, 0.1];
  const x = Float32Array.from({ length: n * dim }, (_, k) => {
    const c = k % 3;
    return means[c] + stds[c] * rng.normal();
  });
  const all: Dataset = { ...dataset(x, n, 3), image };
  const { train, heldout } = splitHeldout(all, 50, 1);
  assertEquals([train.image, heldout.image], [image, image], "splits carry the image shape");
  const norm = fitNormalisation(train);
  assertEquals(norm.perChannel, true, "perChannel");
  for (let c = 0; c < 3; c++) {
    assertClose(norm.mean[c], means[c], 4 * stds[c] / Math.sqrt(train.n * 30), `mean ${c}`);
    assertClose(norm.std[c], stds[c], 0.05 * stds[c], `std ${c}`);
  }
  const out = normalise(train, norm);
  for (let c = 0; c < 3; c++) {
    const m = moments(out, train.n, dim, 3, c);
    assertClose(m.mean, 0, 1e-4, `channel ${c} mean`);
    assertClose(m.std, 1, 1e-4, `channel ${c} std`);
  }
  // The held-out split uses the same statistics: pixel (h 2, w 3) of channel 1 of example 0.
  const j = (2 * 5 + 3) * 3 + 1;
  assertClose(
    normalise(heldout, norm)[j],
    (heldout.x[j] - norm.mean[1]) / norm.std[1],
    1e-5,
    "held-out pixel",
  );
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
