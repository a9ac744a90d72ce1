import { createRng, type Rng } from "../../core/prng.ts";
import { augmentBatch, CROP_PADDING } from "./augment.ts";
import { DataError } from "./errors.ts";
import {
  type AugmentOptions,
  type Batch,
  batchStream,
  checkAugment,
  type LoaderOptions,
  probeBatch,
} from "./loader.ts";
import { assert, assertDataError, assertEquals } from "./test_fixtures.ts";
import type { ImageShape } from "./types.ts";

// 20 non-square 6×5 images with 2 channels (so a swapped height/width or channel shows). Every
// element is distinct and nonzero: 1000 (i + 1) + 100 h + 10 w + c names example i, pixel (h, w),
// channel c, so any output element can be traced back to its source.
const N = 20, H = 6, W = 5, C = 2, DIM = H * W * C;
const IMAGE: ImageShape = { height: H, width: W, channels: C };
const value = (i: number, h: number, w: number, c: number) => 1000 * (i + 1) + 100 * h + 10 * w + c;
const X = new Float32Array(N * DIM);
for (let i = 0; i < N; i++) {
  for (let h = 0; h < H; h++) {
    for (let w = 0; w < W; w++) {
      for (let c = 0; c < C; c++) X[((i * H + h) * W + w) * C + c] = value(i, h, w, c);
    }
  }
}
const Y = Int32Array.from({ length: N }, (_, i) => i % 7);
const X_COPY = X.slice();

const options = (augment?: Partial<AugmentOptions>, o: Partial<LoaderOptions> = {}) => ({
  batchSize: 6,
  epochs: 3,
  shuffle: true,
  seed: 5,
  lastBatch: "keep" as const,
  image: IMAGE,
  source: "train.bin",
  augment: augment && { flip: false, crop: false, seed: 77, ...augment },
  ...o,
});

async function collect(
  augment?: Partial<AugmentOptions>,
  o: Partial<LoaderOptions> = {},
): Promise<Batch[]> {
  return await Array.fromAsync(batchStream(X, Y, DIM, options(augment, o)));
}

/** The example a batch row came from: read from any nonzero element (a window keeps ≥ 2×1 px). */
function sourceOf(b: Batch, row: number): number {
  for (let k = row * DIM; k < (row + 1) * DIM; k++) {
    if (b.x[k] !== 0) return Math.floor(b.x[k] / 1000) - 1;
  }
  throw new Error(`row ${row} of step ${b.step} is all zeros`);
}

/**
 * The reference transform, written independently of augment.ts: pad example i by 4 zeros on
 * every side, take the H×W window whose top-left corner is (4 + dy, 4 + dx), then flip.
 */
function reference(i: number, dy: number, dx: number, flip: boolean): Float32Array {
  const P = CROP_PADDING, PH = H + 2 * P, PW = W + 2 * P;
  const padded = new Float32Array(PH * PW * C);
  for (let h = 0; h < H; h++) {
    for (let w = 0; w < W; w++) {
      for (let c = 0; c < C; c++) padded[((h + P) * PW + w + P) * C + c] = value(i, h, w, c);
    }
  }
  const window = new Float32Array(DIM);
  for (let h = 0; h < H; h++) {
    for (let w = 0; w < W; w++) {
      for (let c = 0; c < C; c++) {
        window[(h * W + w) * C + c] = padded[((h + P + dy) * PW + (w + P + dx)) * C + c];
      }
    }
  }
  if (!flip) return window;
  const flipped = new Float32Array(DIM);
  for (let h = 0; h < H; h++) {
    for (let w = 0; w < W; w++) {
      for (let c = 0; c < C; c++) {
        flipped[(h * W + w) * C + c] = window[(h * W + (W - 1 - w)) * C + c];
      }
    }
  }
  return flipped;
}

interface Seen {
  i: number;
  dy: number;
  dx: number;
  flip: boolean;
}

/** For every row of every batch, the one (dy, dx, flip) of the reference that reproduces it. */
function transforms(batches: Batch[], crop: boolean, flip: boolean): Seen[] {
  const offsets = crop
    ? Array.from({ length: 2 * CROP_PADDING + 1 }, (_, k) => k - CROP_PADDING)
    : [0];
  const flips = flip ? [false, true] : [false];
  const seen: Seen[] = [];
  for (const b of batches) {
    for (let row = 0; row < b.size; row++) {
      const i = sourceOf(b, row);
      const got = b.x.subarray(row * DIM, (row + 1) * DIM);
      const matches: Seen[] = [];
      for (const dy of offsets) {
        for (const dx of offsets) {
          for (const f of flips) {
            if (reference(i, dy, dx, f).every((v, k) => v === got[k])) {
              matches.push({ i, dy, dx, flip: f });
            }
          }
        }
      }
      assert(
        matches.length === 1,
        `step ${b.step} row ${row}: ${matches.length} transforms of example ${i} match`,
      );
      assertEquals(b.y[row], Y[i], `step ${b.step} row ${row}: label follows the example`);
      seen.push(matches[0]);
    }
  }
  return seen;
}

const range = (xs: number[]) => [...new Set(xs)].sort((a, b) => a - b);
const ALL_OFFSETS = [-4, -3, -2, -1, 0, 1, 2, 3, 4];

Deno.test("augment: same seed same batches; another augment seed other pixels, same order", async () => {
  const a = await collect({ flip: true, crop: true, seed: 1 });
  const b = await collect({ flip: true, crop: true, seed: 1 });
  const c = await collect({ flip: true, crop: true, seed: 2 });
  const plain = await collect(undefined);
  assertEquals(a, b, "same seed");
  assert(JSON.stringify(a.map((x) => x.x)) !== JSON.stringify(c.map((x) => x.x)), "seeds differ");
  const order = (bs: Batch[]) =>
    bs.map((x) => Array.from({ length: x.size }, (_, r) => sourceOf(x, r)));
  assertEquals(order(a), order(plain), "augmentation leaves the shuffle order alone");
  assertEquals(order(c), order(plain), "whatever its seed");
  assertEquals(a.map((x) => x.y), plain.map((x) => x.y), "labels");
  assertEquals(X, X_COPY, "the training set itself is never modified");
});

Deno.test("augment: flip only moves (h, w) to (h, W-1-w) or leaves the example identical", async () => {
  const batches = await collect({ flip: true });
  let flipped = 0, total = 0;
  for (const b of batches) {
    for (let row = 0; row < b.size; row++, total++) {
      const i = sourceOf(b, row);
      const got = b.x.subarray(row * DIM, (row + 1) * DIM);
      const at = (h: number, w: number, c: number) => got[(h * W + w) * C + c];
      let same = true, mirrored = true;
      for (let h = 0; h < H; h++) {
        for (let w = 0; w < W; w++) {
          for (let c = 0; c < C; c++) {
            same &&= at(h, w, c) === value(i, h, w, c);
            mirrored &&= at(h, W - 1 - w, c) === value(i, h, w, c);
          }
        }
      }
      assert(same !== mirrored, `step ${b.step} row ${row}: must be exactly one of same/flipped`);
      if (mirrored) flipped++;
    }
  }
  assertEquals(total, 60, "three epochs of 20");
  assert(flipped >= 15 && flipped <= 45, `about half flipped: ${flipped} of ${total}`);
});

Deno.test("augment: crop only is a shifted window, zeros entering from the border, offsets -4..4", async () => {
  const batches = await collect({ crop: true }, { epochs: 15 });
  const seen = transforms(batches, true, false);
  assertEquals(range(seen.map((s) => s.dy)), ALL_OFFSETS, "vertical offsets");
  assertEquals(range(seen.map((s) => s.dx)), ALL_OFFSETS, "horizontal offsets");
  // Spelt out for one shifted example: rows/columns shifted in from outside are exactly 0.
  const k = seen.findIndex((s) => s.dy > 0 && s.dx < 0);
  assert(k >= 0, "some example is shifted down-left");
  const { i, dy, dx } = seen[k];
  const b = batches[Math.floor(k / 6)], row = k % 6;
  const at = (h: number, w: number) => b.x[(row * H * W + h * W + w) * C];
  for (let h = 0; h < H; h++) {
    for (let w = 0; w < W; w++) {
      const inside = h + dy < H && w + dx >= 0;
      assertEquals(at(h, w), inside ? value(i, h + dy, w + dx, 0) : 0, `(${h}, ${w})`);
    }
  }
});

Deno.test("augment: flip and crop together; draws follow the documented order across batches", async () => {
  const batches = await collect({ flip: true, crop: true, seed: 123 }, { epochs: 10 });
  const seen = transforms(batches, true, true);
  assertEquals(range(seen.map((s) => s.dy)), ALL_OFFSETS, "vertical offsets");
  assertEquals(range(seen.map((s) => s.dx)), ALL_OFFSETS, "horizontal offsets");
  assertEquals(range(seen.map((s) => Number(s.flip))), [0, 1], "both flip states");
  // One createRng(seed) for the whole stream; per example: dy, then dx, then flip.
  const rng = createRng(123);
  const expected = seen.map(() => {
    const dy = rng.int(9) - 4, dx = rng.int(9) - 4;
    return { dy, dx, flip: rng.next() < 0.5 };
  });
  assertEquals(seen.map(({ dy, dx, flip }) => ({ dy, dx, flip })), expected, "draw sequence");
});

Deno.test("augment: flip only and crop only draw only what they use", async () => {
  const flips = transforms(await collect({ flip: true, seed: 9 }), false, true);
  const rng = createRng(9);
  assertEquals(flips.map((s) => s.flip), flips.map(() => rng.next() < 0.5), "flip draws");
  const crops = transforms(await collect({ crop: true, seed: 9 }), true, false);
  const rng2 = createRng(9);
  assertEquals(
    crops.map((s) => [s.dy, s.dx]),
    crops.map(() => [rng2.int(9) - 4, rng2.int(9) - 4]),
    "crop draws",
  );
});

Deno.test("augmentBatch: a hand-worked 3×3 example (crop dy 1, dx -1, then flip)", () => {
  // Scripted draws: int(9) gives 5 then 3 (dy 1, dx -1), next() gives 0.25 (flip).
  const script = [5 / 9 + 1e-9, 3 / 9 + 1e-9, 0.25];
  const next = () => script.shift()!;
  const rng = { next, int: (n: number) => Math.floor(next() * n) } as unknown as Rng;
  // One 3×3 grayscale image, 1..9 row by row.
  const x = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const draws = augmentBatch(x, 1, { height: 3, width: 3, channels: 1 }, {
    flip: true,
    crop: true,
  }, rng);
  assertEquals(draws, [{ dy: 1, dx: -1, flip: true }], "draws");
  // Window rows 1..3, columns -1..1 of the padded image: [0 4 5; 0 7 8; 0 0 0]; flipped:
  assertEquals(x, [5, 4, 0, 8, 7, 0, 0, 0, 0], "pixels");
});

Deno.test("augment: a kept short last batch is augmented too", async () => {
  const batches = await collect({ flip: true, crop: true }, { batchSize: 8, epochs: 2 });
  assertEquals(batches.map((b) => b.size), [8, 8, 4, 8, 8, 4], "sizes");
  transforms(batches, true, true);
});

Deno.test("augment: the probe batch is never augmented", async () => {
  const stream = batchStream(X, Y, DIM, options({ flip: true, crop: true }));
  const first = (await Array.fromAsync(stream))[0];
  assert(first.x.some((v, k) => v !== X[k]), "the training batches are augmented");
  const probe = probeBatch(X, Y, DIM, 10);
  assertEquals(probe.x, X.subarray(0, 10 * DIM), "probe pixels are the held-out pixels");
  assertEquals(X, X_COPY, "the held-out split itself is unchanged");
});

Deno.test("augment: non-image data is a DataError; no transform asked is no error", async () => {
  const flat = { ...options({ flip: true }), image: undefined };
  await assertDataError(
    () => batchStream(X, Y, DIM, flat),
    "train.bin",
    "train split",
    /^augmentation \(flip\) needs image data \(IDX or CIFAR-10\); these examples are 60 flat features$/,
  );
  await assertDataError(
    () => checkAugment({ dim: 4, source: "a.csv" }, { flip: true, crop: true, seed: 0 }),
    "a.csv",
    "train split",
    /^augmentation \(flip and crop\) needs image data/,
  );
  await assertDataError(
    () =>
      batchStream(X, Y, DIM, {
        ...flat,
        source: undefined,
        augment: { flip: false, crop: true, seed: 0 },
      }),
    "training data",
    "train split",
    /^augmentation \(crop\) needs image data/,
  );
  checkAugment({ dim: 4, source: "a.csv" }, { flip: false, crop: false, seed: 0 });
  checkAugment({ dim: 4, source: "a.csv" }, undefined);
  const off = await Array.fromAsync(batchStream(X, Y, DIM, { ...flat, augment: undefined }));
  assertEquals(off, await collect(undefined), "unaugmented batches of flat data");
  let thrown: unknown;
  try {
    checkAugment({ dim: 4, image: IMAGE, source: "x" }, undefined);
  } catch (e) {
    thrown = e;
  }
  assert(thrown instanceof RangeError && !(thrown instanceof DataError), "shape/dim mismatch");
});

Deno.test("batchStream: startStep resumes exactly (shuffle, keep/drop, flip and crop draws)", async () => {
  for (const shuffle of [true, false]) {
    for (const lastBatch of ["keep", "drop"] as const) {
      for (const augment of [undefined, { flip: true }, { flip: true, crop: true }]) {
        const whole = await collect(augment, { shuffle, lastBatch });
        for (let start = 1; start < whole.length; start++) {
          const tail = await collect(augment, { shuffle, lastBatch, startStep: start });
          const what = `shuffle ${shuffle}, ${lastBatch}, ${
            JSON.stringify(augment)
          }, from ${start}`;
          assertEquals(tail.length, whole.length - start, `${what}: batches`);
          tail.forEach((b, i) => {
            const w = whole[start + i];
            assertEquals([b.step, b.epoch, b.size], [w.step, w.epoch, w.size], `${what}: step`);
            assertEquals(b.x, w.x, `${what}: x of step ${b.step}`);
            assertEquals(b.y, w.y, `${what}: y of step ${b.step}`);
          });
        }
      }
    }
  }
});

Deno.test("batchStream: stop() ends the stream before the next batch", async () => {
  let pulled = 0;
  const batches = await Array.fromAsync(
    batchStream(X, Y, DIM, { ...options(), prefetch: 0, stop: () => pulled >= 2 }),
    (b) => (pulled++, b),
  );
  assertEquals(batches.length, 2, "batches before the stop");
});
