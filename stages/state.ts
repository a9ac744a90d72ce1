/**
 * The training state of every run as a checkpoint holds it, and its initial running statistics.
 *
 * @module
 */

import type { ModelLayout } from "../core/graph.ts";
import { newReals, type Precision, type Reals } from "../shaders/precision.ts";

/**
 * The training state of every run, run-stacked: what a checkpoint holds of the GPU. Read back,
 * it is float32 for an f32 trainer and float64 otherwise (df64 pairs joined), with each df64
 * pair's lo in `lo` so that it goes back bit for bit; given to a trainer, any numbers, rounded
 * to its precision (exactly restored with `lo`). Running statistics are in the trainer's units
 * (weight-norm or plain, `--running-stats`).
 */
export interface TrainerState {
  params: Reals;
  bufs: Reals;
  runningMean: Reals;
  runningVar: Reals;
  /** df64: the lo of every pair of each array (see `decodeRealsExact`). */
  lo?: Record<StateArray, Float32Array>;
}

/** The arrays of a {@link TrainerState}. */
export const STATE_ARRAYS = ["params", "bufs", "runningMean", "runningVar"] as const;

/** One of {@link STATE_ARRAYS}. */
export type StateArray = typeof STATE_ARRAYS[number];

/** What the initial running statistics depend on. */
export interface RunningStatsOptions {
  precision?: Precision;
  layout: ModelLayout;
  runs: number;
  runningStats: "weightnorm" | "plain";
}

/**
 * Initial running variances, run-stacked: 1 in plain units, so 1/||W_l||² for a BatchNorm
 * whose statistics are kept in units of its S tensor's norm (`--running-stats weightnorm`).
 */
export function initialRunningVar(opts: RunningStatsOptions, params: ArrayLike<number>): Reals {
  const { layout, runs } = opts;
  const rv = newReals(opts.precision ?? "f32", runs * layout.statsSize);
  for (let r = 0; r < runs; r++) {
    for (const bn of layout.batchNorms) {
      let n2 = 1;
      if (opts.runningStats === "weightnorm" && bn.unit !== undefined) {
        const t = layout.sTensors[bn.unit], base = r * layout.size + t.offset;
        n2 = 0;
        for (let i = 0; i < t.size; i++) n2 += params[base + i] ** 2;
      }
      const at = r * layout.statsSize + bn.offset;
      rv.fill(1 / n2, at, at + bn.features);
    }
  }
  return rv;
}
