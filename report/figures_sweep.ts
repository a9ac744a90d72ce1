/**
 * The plots of a comparison page: for each axis, the onset step of A–B and A–A1 (first step
 * above each threshold) against the axis' values; and the distance curves of A–B and of A–A1,
 * one curve per result.
 *
 * @module
 */

import type { TopLevelSpec } from "vega-lite";
import { COMPARED_PAIRS, type Comparison } from "./compare.ts";
import { settingText } from "./format.ts";
import { ONSET_KEYS, ONSET_THRESHOLDS } from "../core/onsets.ts";
import type { PlotData, Trace } from "./plot.ts";
import { pairName, PLOT_HEIGHT, PLOT_WIDTH, RUN_COLORS, VL_CONFIG } from "./theme.ts";
import { toLogPlot } from "./traces.ts";

/** 20 distinguishable colours (Vega's tableau20) for one curve per result; more repeat. */
const PALETTE: readonly string[] = [
  "#4c78a8",
  "#9ecae9",
  "#f58518",
  "#ffbf79",
  "#54a24b",
  "#88d27a",
  "#b79a20",
  "#f2cf5b",
  "#439894",
  "#83bcb6",
  "#e45756",
  "#ff9d98",
  "#79706e",
  "#bab0ac",
  "#d67195",
  "#fcbfd2",
  "#b279a2",
  "#d6a5c9",
  "#9e765f",
  "#d8b5a5",
];

const NEVER = "never (at last step)";

/** The onset steps against one axis, a small panel per threshold. */
export function onsetSpec(c: Comparison, axis: Comparison["axes"][number]): TopLevelSpec {
  const order = axis.values.map((v) => settingText(v));
  const rows = [];
  for (const p of c.points) {
    if (!p.data) continue;
    for (const r of COMPARED_PAIRS) {
      const o = p.onsets[r];
      if (!o) continue;
      for (const k of ONSET_KEYS) {
        const step = o.above[k];
        rows.push({
          value: settingText(p.settings[axis.name]),
          pair: pairName(r),
          threshold: `> ${k}`,
          step: step ?? p.data.lastStep,
          crossed: step === null ? NEVER : "first step above",
          label: p.label,
        });
      }
    }
  }
  const pairs = COMPARED_PAIRS.map(pairName);
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    config: VL_CONFIG,
    title: {
      text: `Onset of the distance to run A against ${axis.name}`,
      subtitle: ["first metered step at which max |Δsoftmax| on the probe passes each threshold"],
    },
    data: { values: rows },
    facet: {
      column: {
        field: "threshold",
        type: "ordinal",
        sort: ONSET_KEYS.map((k) => `> ${k}`),
        title: null,
      },
    },
    spec: {
      width: Math.max(120, Math.min(260, 40 * order.length)),
      height: PLOT_HEIGHT,
      mark: { type: "point", opacity: 0.75, size: 45 },
      encoding: {
        x: {
          field: "value",
          type: "ordinal",
          sort: order,
          title: axis.name,
          axis: { labelAngle: 0 },
        },
        xOffset: { field: "pair", type: "nominal", sort: pairs },
        y: { field: "step", type: "quantitative", title: "step" },
        color: {
          field: "pair",
          type: "nominal",
          title: null,
          scale: { domain: pairs, range: COMPARED_PAIRS.map((r) => RUN_COLORS[r]) },
        },
        shape: {
          field: "crossed",
          type: "nominal",
          title: null,
          scale: { domain: ["first step above", NEVER], range: ["circle", "triangle-up"] },
        },
      },
    },
  } as TopLevelSpec;
}

/** The distance of pair A–`run` against step, one curve per result. */
export function curvesPlot(c: Comparison, run: string): PlotData {
  const traces: Trace[] = [];
  const colors: Record<string, string> = {};
  for (const p of c.points) {
    const bins = p.data?.series.get(`${run}.dist_maxprob`);
    if (!bins || bins.count === 0) continue;
    colors[p.label] = PALETTE[Object.keys(colors).length % PALETTE.length];
    traces.push({
      series: p.label,
      kind: "probe",
      mark: "line",
      points: bins.points(PLOT_WIDTH, c.firstStep, c.lastStep),
    });
  }
  const notes = traces.length > PALETTE.length ? [`${traces.length} curves: colours repeat`] : [];
  return toLogPlot({
    title: `Distance ${pairName(run)}, one curve per result`,
    notes,
    yTitle: "max |Δsoftmax| (probe)",
    yScale: "log",
    traces,
    colors,
    marks: [],
    thresholds: ONSET_THRESHOLDS,
    steps: [c.firstStep, c.lastStep],
  }, { zeros: "clamp", ceiling: ONSET_THRESHOLDS[0], zeroMeaning: "exact agreement" });
}
