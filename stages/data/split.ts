/**
 * Seeded train / held-out splits of a dataset that has no separate test set.
 *
 * The held-out examples are those at positions `perm[0..heldout)` of a Fisher-Yates permutation
 * of `0..n-1` drawn with `createRng(seed).shuffle` (core/prng.ts); both splits then keep the
 * file's order, so `--shuffle false` replays the file order minus the held-out rows.
 *
 * @module
 */

import { createRng } from "../../core/prng.ts";
import { DataError } from "./errors.ts";
import type { Dataset, Splits } from "./types.ts";

/**
 * Seed of the default data's held-out permutation. It is a constant, independent of `--seed`, so
 * the default held-out split, and with it the probe batch, is the same in every run.
 */
export const DEFAULT_SPLIT_SEED = 20170828;

/** Indices (ascending) of the examples held out of `n` when `heldout` are held out with `seed`. */
export function heldoutIndices(n: number, heldout: number, seed: number): Int32Array {
  const perm = createRng(seed).shuffle(Int32Array.from({ length: n }, (_, i) => i));
  return perm.slice(0, heldout).sort();
}

/**
 * Splits `ds` into `n - heldout` training and `heldout` held-out examples (see the module
 * comment). Holding out all examples, or a negative or fractional count, is a DataError.
 */
export function splitHeldout(ds: Dataset, heldout: number, seed: number): Splits {
  if (!Number.isInteger(heldout) || heldout < 0 || heldout >= ds.n) {
    throw new DataError(
      ds.source,
      "held-out split",
      `cannot hold out ${heldout} of ${ds.n} examples: need 0 <= held-out < ${ds.n}`,
    );
  }
  const held = heldoutIndices(ds.n, heldout, seed);
  const isHeld = new Uint8Array(ds.n);
  for (const i of held) isHeld[i] = 1;
  const kept = new Int32Array(ds.n - heldout);
  for (let i = 0, k = 0; i < ds.n; i++) if (!isHeld[i]) kept[k++] = i;
  return {
    train: subset(ds, kept, `${ds.name} train`),
    heldout: subset(ds, held, `${ds.name} held-out`),
  };
}

/** The examples of `ds` at `rows`, in that order, as a new dataset called `name`. */
export function subset(ds: Dataset, rows: Int32Array, name: string): Dataset {
  const x = new Float32Array(rows.length * ds.dim);
  const y = new Int32Array(rows.length);
  rows.forEach((r, i) => {
    x.set(ds.x.subarray(r * ds.dim, (r + 1) * ds.dim), i * ds.dim);
    y[i] = ds.y[r];
  });
  return { ...ds, name, x, y, n: rows.length };
}
