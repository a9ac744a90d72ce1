/**
 * Folds a stream of rows into what the report draws, in memory that does not grow with the
 * number of rows: min/max bins per column (see bins.ts), the rescale events, the lr phase
 * boundaries, the onsets of every pair and the last value of every column.
 *
 * @module
 */

import { MinMaxBins } from "./bins.ts";
import type { RunName } from "../core/runs.ts";
import { runsOf } from "./columns.ts";
import type { Onsets } from "../core/onsets.ts";
import { OnsetTracker } from "./onsets.ts";
import { LrPhaseDetector, type Mark } from "./phases.ts";
import type { EventRow, Row } from "./rows.ts";

/** A derived series: |norm_ratio / c_pred - 1| of pair X, named `X.<this suffix>`. */
export const REL_DIFF = "norm_ratio_rel_diff";

/** Rescale events kept for the marks; the rest are only counted. */
const MAX_EVENTS = 100;

/** Everything the report keeps of one result file. */
export interface RunData {
  source: string;
  /** Runs in column order, A first. */
  runs: RunName[];
  /** Step rows read, and the first and last step. */
  rows: number;
  firstStep: number;
  lastStep: number;
  /** Min/max bins of every kept column (and of the derived series). */
  series: Map<string, MinMaxBins>;
  /** Rescale events (the first {@link MAX_EVENTS}) and how many more there were. */
  events: EventRow[];
  moreEvents: number;
  /** Phase boundaries seen in run A's lr column. */
  lrMarks: Mark[];
  /** Per pair X (not A): onsets of the probe distance and of the training-batch distance. */
  onsets: Record<string, { probe: Onsets | null; batch: Onsets | null }>;
  /** The last value of each column (NaN when it was measured but not finite). */
  lastValues: Record<string, number>;
}

/** What to keep: bins of `capacity` per series, for the columns `keep` accepts (default all). */
export interface AccumulateOptions {
  capacity: number;
  keep?: (column: string) => boolean;
}

/** Reads `rows` to the end and returns what the report needs of them. */
export async function accumulate(
  rows: AsyncIterable<Row>,
  source: string,
  opts: AccumulateOptions,
): Promise<RunData> {
  const keep = opts.keep ?? (() => true);
  const series = new Map<string, MinMaxBins>();
  const probe = new Map<string, OnsetTracker>(), batch = new Map<string, OnsetTracker>();
  const lastValues: Record<string, number> = {};
  const columns = new Set<string>(["step", "epoch"]);
  const lr = new LrPhaseDetector();
  const events: EventRow[] = [];
  let moreEvents = 0, count = 0, firstStep = NaN, lastStep = NaN;
  const bin = (name: string, step: number, v: number) => {
    if (!keep(name)) return;
    let b = series.get(name);
    if (!b) series.set(name, b = new MinMaxBins(opts.capacity));
    b.add(step, v);
  };
  const track = (map: Map<string, OnsetTracker>, pair: string, step: number, v: number) => {
    let t = map.get(pair);
    if (!t) map.set(pair, t = new OnsetTracker());
    t.add(step, v);
  };
  for await (const row of rows) {
    if (row.kind === "event") {
      if (events.length < MAX_EVENTS) events.push(row);
      else moreEvents++;
      continue;
    }
    const { step, values } = row;
    if (count++ === 0) firstStep = step;
    lastStep = step;
    for (const name in values) {
      const v = values[name];
      if (v === undefined) continue;
      columns.add(name);
      lastValues[name] = v;
      bin(name, step, v);
    }
    for (const name in values) {
      if (!name.endsWith(".dist_maxprob") && !name.endsWith(".batch_maxprob")) continue;
      const v = values[name];
      if (v === undefined) continue;
      const pair = name.slice(0, name.indexOf("."));
      track(name.endsWith(".dist_maxprob") ? probe : batch, pair, step, v);
    }
    const aLr = values["A.lr"];
    if (aLr !== undefined) lr.add(step, aLr);
    addRelDiffs(values, (name, v) => bin(name, step, v));
  }
  const runs = runsOf(columns, source);
  const onsets: RunData["onsets"] = {};
  for (const r of runs.slice(1)) {
    onsets[r] = { probe: probe.get(r)?.result ?? null, batch: batch.get(r)?.result ?? null };
  }
  return {
    source,
    runs,
    rows: count,
    firstStep,
    lastStep,
    series,
    events,
    moreEvents,
    lrMarks: lr.finish(),
    onsets,
    lastValues,
  };
}

/** Adds `X.norm_ratio_rel_diff` for each pair X with both its norm ratio and c_pred in `values`. */
function addRelDiffs(
  values: Record<string, number | undefined>,
  add: (name: string, v: number) => void,
): void {
  for (const name in values) {
    if (!name.endsWith(".c_pred")) continue;
    const pair = name.slice(0, -".c_pred".length);
    const c = values[name], ratio = values[`${pair}.norm_ratio`];
    if (c === undefined || ratio === undefined || c === 0) continue;
    add(`${pair}.${REL_DIFF}`, Math.abs(ratio / c - 1));
  }
}
