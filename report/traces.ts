/**
 * From accumulated columns to plot traces: one pixel column of min/max per plot pixel, and the
 * log-axis preparation of a whole plot (one floor for all its traces, notes saying what was
 * clamped or left out).
 *
 * @module
 */

import type { RunData } from "./accumulate.ts";
import { logFloor, minPositive, prepareLog, type ZeroPolicy } from "./logscale.ts";
import type { PlotData, Trace } from "./plot.ts";
import { PLOT_WIDTH } from "./theme.ts";

/** A sparse line with at most this many points also gets point symbols. */
const SPARSE_POINTS = 100;

/** A trace of column `column` of `d` reduced to the plot's pixel columns, or null when empty. */
export function columnTrace(
  d: RunData,
  column: string,
  series: string,
  kind: string,
  mark: Trace["mark"] = "line",
): Trace | null {
  const b = d.series.get(column);
  if (!b || b.count === 0) return null;
  const points = b.points(PLOT_WIDTH, d.firstStep, d.lastStep);
  // Measured on few of the rows (the probe every K steps): show where the line's points are;
  // a point series as dense as a line (eval mode over a long run) is drawn as one.
  const sparse = b.count * 2 < d.rows && points.length <= SPARSE_POINTS;
  const drawn = mark === "line" && sparse
    ? "line+point"
    : mark === "point" && points.length > SPARSE_POINTS
    ? "line"
    : mark;
  return { series, kind, mark: drawn, points };
}

/** How many values of `columns` were measured but not finite (not drawn). */
export function nonFiniteCount(d: RunData, columns: string[]): number {
  let n = 0;
  for (const c of columns) n += d.series.get(c)?.nonFinite ?? 0;
  return n;
}

/** What a log plot does with zeros, and the highest floor it may use (its lowest threshold). */
export interface LogOptions {
  zeros: ZeroPolicy;
  ceiling?: number;
  /** What a zero means, for the note ("exact agreement"). */
  zeroMeaning?: string;
}

/** `p` with its traces prepared for a log axis and notes on what was clamped or dropped. */
export function toLogPlot(p: PlotData, opts: LogOptions): PlotData {
  const floor = logFloor(minPositive(p.traces.map((t) => t.points)), opts.ceiling ?? Infinity);
  let clamped = 0, dropped = 0;
  const traces = p.traces.map((t) => {
    const r = prepareLog(t.points, opts.zeros, floor);
    clamped += r.clamped;
    dropped += r.dropped;
    return { ...t, points: r.points };
  });
  const notes = [...p.notes];
  const meaning = opts.zeroMeaning ? ` (${opts.zeroMeaning})` : "";
  if (clamped > 0) notes.push(`zeros${meaning} drawn at ${floor.toExponential(0)}`);
  if (dropped > 0) {
    notes.push(
      opts.zeros === "drop"
        ? "zero and negative values not drawn (log axis)"
        : "negative values not drawn (log axis)",
    );
  }
  return { ...p, traces: traces.filter((t) => t.points.length > 0), notes, yScale: "log" };
}

/** The non-null traces. */
export function present(...traces: (Trace | null)[]): Trace[] {
  return traces.filter((t): t is Trace => t !== null);
}
