/**
 * The project's one seeded pseudo-random generator, used for weight initialisation, shuffling
 * and random test inputs, so a `--seed` reproduces a run exactly on any machine.
 *
 * Algorithm: SplitMix32-style state advance (add 0x9E3779B9) with the "mulberry32" output mix;
 * 32-bit state, period 2^32, fine for shuffles and initialisation (not for cryptography).
 *
 * @module
 */

/** A seeded generator of uniform and normal numbers. */
export interface Rng {
  /** The next uniform 32-bit unsigned integer. */
  nextU32(): number;
  /** The next uniform number in [0, 1), with 32 bits of randomness. */
  next(): number;
  /** A uniform number in [lo, hi). */
  uniform(lo: number, hi: number): number;
  /** A standard normal number (Box-Muller). */
  normal(): number;
  /** A uniform integer in [0, n). */
  int(n: number): number;
  /** Shuffles `a` in place (Fisher-Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T;
}

/** Creates a generator from an integer seed (any JS number; taken modulo 2^32). */
export function createRng(seed: number): Rng {
  let state = (Math.trunc(seed) >>> 0) ^ 0x6d2b79f5;
  const nextU32 = (): number => {
    state = (state + 0x9e3779b9) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 16), 0x21f0aaad);
    t = Math.imul(t ^ (t >>> 15), 0x735a2d97);
    return (t ^ (t >>> 15)) >>> 0;
  };
  const next = () => nextU32() / 4294967296;
  return {
    nextU32,
    next,
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    normal: () => {
      const u = 1 - next(); // (0, 1]: log is finite
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
    },
    int: (n) => Math.floor(next() * n),
    shuffle(a) {
      for (let i = a.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
      }
      return a;
    },
  };
}

/**
 * A seed for one independent stream ("init", "shuffle", "perturb") derived from the user's
 * `--seed`, so initialisation, shuffling and the A2 perturbation never share a random stream:
 * FNV-1a of the stream name, combined with the seed and finished with the murmur3 mix.
 */
export function deriveSeed(seed: number, stream: string): number {
  let h = 0x811c9dc5;
  for (const ch of stream) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  h = (h ^ (Math.trunc(seed) >>> 0)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The seeds of a run's independent random streams, each derived from the user's `--seed`.
 * A type literal, not an interface, so it is a `Record<string, number>` (a checkpoint's record).
 */
export type Seeds = {
  /** The batch order (stages/data/loader.ts). */
  shuffle: number;
  /** The flips and crops of `--augment`. */
  augment: number;
  /** Run A2's per-step perturbation of S. */
  perturb: number;
  /** The initial weights. */
  init: number;
};

/**
 * Every named stream's seed for `config.seed` (`--seed`): the one place the stream names are
 * spelled, so the trainer, the loader and the checkpoint's record cannot disagree. The key
 * order is the one checkpoints record.
 */
export function seeds(config: { readonly seed: number }): Seeds {
  const { seed } = config;
  return {
    shuffle: deriveSeed(seed, "shuffle"),
    augment: deriveSeed(seed, "augment"),
    perturb: deriveSeed(seed, "perturb"),
    init: deriveSeed(seed, "init"),
  };
}
