/**
 * The look shared by every plot: a generic font family (so the SVG names no web font and the
 * viewer's own sans-serif is used), fixed colours per run and pair, sizes.
 *
 * @module
 */

import type { Config } from "vega-lite";

/** Plot area in pixels; the reduction keeps one min/max column per pixel of the width. */
export const PLOT_WIDTH = 460;
/** Plot area height in pixels. */
export const PLOT_HEIGHT = 200;

/** Vega-Lite config of every plot. */
export const VL_CONFIG: Config = {
  font: "sans-serif",
  background: "white",
  view: { stroke: "#bbb" },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: "normal", gridColor: "#eee" },
  legend: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: "normal", labelLimit: 320 },
  title: { fontSize: 14, subtitleFontSize: 11, subtitleColor: "#555", anchor: "start" },
  point: { size: 28, filled: true },
};

/** A colour per run (per-run plots) and per pair A–X (comparison plots, X's colour). */
export const RUN_COLORS: Readonly<Record<string, string>> = {
  A: "#1f77b4",
  B: "#ff7f0e",
  A1: "#2ca02c",
  A2: "#9467bd",
  C: "#d62728",
};

/** The name of pair A–X as plots show it. */
export function pairName(run: string): string {
  return `A–${run}`;
}
