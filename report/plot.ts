/**
 * One plot as data (traces of points, vertical marks, threshold lines) and its Vega-Lite spec.
 * Colour names the run or pair, the dash pattern (lines) or shape (points) what was measured;
 * phase boundaries and rescales are vertical rules, thresholds horizontal ones. Log axes get
 * their values prepared by logscale.ts first.
 *
 * @module
 */

import type { TopLevelSpec } from "vega-lite";
import type { Point } from "./bins.ts";
import type { Mark } from "./phases.ts";
import { PLOT_HEIGHT, PLOT_WIDTH, VL_CONFIG } from "./theme.ts";

/** One series of a plot. */
export interface Trace {
  /** Colour legend entry: a run ("B") or pair ("A–B"). */
  series: string;
  /** Dash or shape legend entry: what was measured ("probe", "training batch", "predicted"). */
  kind: string;
  /**
   * Lines for per-step series, points for rare ones (eval mode every 50 steps), both for series
   * measured on some steps only (the probe every K steps).
   */
  mark: "line" | "point" | "line+point";
  points: Point[];
}

/** Everything one plot shows. */
export interface PlotData {
  title: string;
  /** Notes under the title (what was clamped or dropped, what the marks mean). */
  notes: string[];
  yTitle: string;
  yScale: "log" | "linear";
  traces: Trace[];
  /** Colour of each series, in legend order. */
  colors: Readonly<Record<string, string>>;
  /** Vertical marks (phase boundaries, rescales). */
  marks: Mark[];
  /** Horizontal threshold lines (log plots of distances). */
  thresholds?: readonly number[];
  /** The x range: the run's first and last step. */
  steps: [number, number];
  /** Draw the marks' labels (off when there are too many to read). */
  markLabels?: boolean;
}

const DASHES: readonly number[][] = [[1, 0], [6, 3], [2, 2], [8, 3, 2, 3]];
const SHAPES: readonly string[] = ["circle", "triangle-up", "square", "diamond"];

/** Values as compact CSV text for inline data: 6 significant digits are finer than a pixel. */
export function csvValues(header: string[], rows: (string | number)[][]): string {
  const cell = (
    v: string | number,
  ) => (typeof v === "number" ? String(Number(v.toPrecision(6))) : v);
  return [header.join(","), ...rows.map((r) => r.map(cell).join(","))].join("\n");
}

/** The traces' points drawn as `mark` (lines, or points) as inline CSV data. */
function traceData(traces: Trace[], mark: "line" | "point") {
  const rows: (string | number)[][] = [];
  for (const t of traces) {
    if (!t.mark.includes(mark)) continue;
    for (const p of t.points) rows.push([p.step, p.value, t.series, t.kind]);
  }
  return {
    values: csvValues(["step", "value", "series", "kind"], rows),
    format: { type: "csv" as const, parse: { step: "number", value: "number" } },
  };
}

/** The smallest and largest value drawn (traces and threshold lines). */
function valueRange(p: PlotData): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const t of p.traces) {
    for (const q of t.points) [lo, hi] = [Math.min(lo, q.value), Math.max(hi, q.value)];
  }
  for (const t of p.thresholds ?? []) [lo, hi] = [Math.min(lo, t), Math.max(hi, t)];
  return [lo, hi];
}

/**
 * The y scale and axis. A log axis over a decade or more is extended to whole powers of ten
 * and labelled only there (1e-8, 1e-7, ...), so labels never crowd; a narrower one keeps the
 * data's range and plain labels.
 */
function yScaleAxis(
  p: PlotData,
): { scale: Record<string, unknown>; axis: Record<string, unknown> } {
  if (p.yScale !== "log") return { scale: { zero: false }, axis: {} };
  const [lo, hi] = valueRange(p);
  const a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
  if (!(b - a >= 2) || !Number.isFinite(a + b)) {
    return { scale: { type: "log", nice: false }, axis: { format: "~g", tickCount: 5 } };
  }
  const step = Math.ceil((b - a + 1) / 9); // at most ~9 labels
  const values: number[] = [];
  for (let e = a; e <= b; e += step) values.push(Number(`1e${e}`));
  return {
    scale: { type: "log", domain: [Number(`1e${a}`), Number(`1e${b}`)], nice: false },
    axis: { values, labelExpr: "replace(format(datum.value, '.0e'), 'e+', 'e')" },
  };
}

/** The Vega-Lite spec of `p`. */
export function plotSpec(p: PlotData): TopLevelSpec {
  const series = Object.keys(p.colors).filter((s) => p.traces.some((t) => t.series === s));
  const x = {
    field: "step",
    type: "quantitative" as const,
    title: "step",
    scale: { domain: p.steps, nice: false },
  };
  const { scale, axis } = yScaleAxis(p);
  const y = { field: "value", type: "quantitative" as const, title: p.yTitle, scale, axis };
  const color = {
    field: "series",
    type: "nominal" as const,
    title: null,
    scale: { domain: series, range: series.map((s) => p.colors[s]) },
  };
  // Identical runs draw on top of each other: the first series is widest, so each stays visible.
  // (Its own field: a second encoding of "series" would merge into the colour legend.)
  const strokeWidth = {
    field: "width",
    type: "ordinal" as const,
    scale: {
      type: "ordinal" as const,
      domain: series,
      range: series.map((_, i) => Math.max(1, 3.5 - 1.2 * i)),
    },
    legend: null,
  };
  const kindsOf = (mark: "line" | "point") => [
    ...new Set(p.traces.filter((t) => t.mark.includes(mark)).map((t) => t.kind)),
  ];
  // One kind alone needs no legend entry ("measured" says nothing the title does not).
  const byKind = (kinds: string[], range: readonly unknown[]) => ({
    field: "kind",
    type: "nominal" as const,
    title: null,
    scale: { domain: kinds, range: kinds.map((_, i) => range[i % range.length]) },
    ...(new Set(p.traces.map((t) => t.kind)).size === 1 ? { legend: null } : {}),
  });
  const layers: unknown[] = [];
  const lineKinds = kindsOf("line"), pointKinds = kindsOf("point");
  if (lineKinds.length > 0) {
    layers.push({
      data: traceData(p.traces, "line"),
      transform: [{ calculate: "datum.series", as: "width" }],
      mark: { type: "line", clip: true },
      encoding: {
        x,
        y,
        color,
        strokeDash: byKind(lineKinds, DASHES),
        strokeWidth,
        detail: { field: "kind" },
      },
    });
  }
  if (pointKinds.length > 0) {
    layers.push({
      data: traceData(p.traces, "point"),
      // Its own field, so that the shape legend is not merged into the dash legend.
      transform: [{ calculate: "datum.kind", as: "measured" }],
      mark: { type: "point", clip: true },
      encoding: { x, y, color, shape: { ...byKind(pointKinds, SHAPES), field: "measured" } },
    });
  }
  layers.push(...thresholdLayers(p.thresholds ?? []), ...markLayers(p));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    config: {
      ...VL_CONFIG,
      legend: { ...VL_CONFIG.legend, orient: "bottom", direction: "horizontal" },
    },
    width: PLOT_WIDTH,
    height: PLOT_HEIGHT,
    title: { text: p.title, subtitle: p.notes.length > 0 ? p.notes : undefined },
    layer: layers,
    resolve: { scale: { color: "shared" } },
  } as TopLevelSpec;
}

/** Horizontal dashed rules at the thresholds, labelled just right of the plot. */
function thresholdLayers(thresholds: readonly number[]): unknown[] {
  if (thresholds.length === 0) return [];
  const data = { values: thresholds.map((t) => ({ threshold: t, label: t.toExponential(0) })) };
  const y = { field: "threshold", type: "quantitative" };
  return [
    { data, mark: { type: "rule", color: "#999", strokeDash: [4, 3] }, encoding: { y } },
    {
      data,
      // Outside the plot's right edge, where no data line can cover them.
      mark: { type: "text", align: "left", baseline: "middle", color: "#777", fontSize: 10 },
      encoding: { y, x: { value: PLOT_WIDTH + 3 }, text: { field: "label" } },
    },
  ];
}

/** Vertical rules at the phase boundaries (grey) and rescales (red), with their labels. */
function markLayers(p: PlotData): unknown[] {
  const inRange = p.marks.filter((m) => m.step >= p.steps[0] && m.step <= p.steps[1]);
  const labels = p.markLabels ?? inRange.length <= 6;
  const x = { field: "step", type: "quantitative", scale: { domain: p.steps, nice: false } };
  const layers: unknown[] = [];
  for (const [kind, color] of [["phase", "#888"], ["rescale", "#c0392b"]] as const) {
    const values = inRange.filter((m) => m.kind === kind);
    if (values.length === 0) continue;
    const data = { values };
    layers.push({ data, mark: { type: "rule", color, strokeDash: [2, 2] }, encoding: { x } });
    if (!labels) continue;
    // Phase labels at the top, rescale labels at the bottom: near marks of the two kinds (a
    // rescale just after a milestone) do not write over each other.
    const top = kind === "phase";
    layers.push({
      data,
      mark: {
        type: "text",
        align: "left",
        baseline: top ? "top" : "bottom",
        dx: 3,
        dy: top ? 3 : -3,
        fontSize: 10,
        color,
      },
      encoding: { x, y: { value: top ? 0 : PLOT_HEIGHT }, text: { field: "label" } },
    });
  }
  return layers;
}
