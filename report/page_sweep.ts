/**
 * The comparison page of a sweep or of several results: onsets against each axis, the distance
 * curves of every result, and one table row per result.
 *
 * @module
 */

import { COMPARED_PAIRS, type Comparison } from "./compare.ts";
import { curvesPlot, onsetSpec } from "./figures_sweep.ts";
import { num, onset, pct, settingText } from "./format.ts";
import { type Figure, page, table } from "./html.ts";
import { ONSET_KEYS } from "../core/onsets.ts";
import { plotSpec } from "./plot.ts";
import { renderSvg } from "./render.ts";
import { pairName } from "./theme.ts";

/** The HTML comparison page. */
export async function comparePage(c: Comparison, title: string): Promise<string> {
  const specs = [
    // No axes (results without settings): the files themselves are the axis.
    ...(c.axes.length > 0 ? c.axes : [{ name: "result", values: c.points.map((p) => p.label) }])
      .map((a) => onsetSpec(axisOrLabel(c, a.name), a)),
    ...COMPARED_PAIRS.map((r) => curvesPlot(c, r)).filter((p) => p.traces.length > 0).map(plotSpec),
  ];
  const figures: Figure[] = [];
  for (const spec of specs) figures.push({ spec, svg: await renderSvg(spec) });
  const missing = c.points.filter((p) => !p.data).length;
  return page({
    title,
    subtitle: [
      `${c.source}: ${c.points.length} results` +
      (missing ? ` (${missing} without a result file yet)` : "") +
      (c.axes.length
        ? `; axes ${c.axes.map((a) => `${a.name} (${a.values.length})`).join(", ")}`
        : ""),
      "Onsets from each result's summary when there is one (the whole run), else from its rows.",
    ],
    before: [],
    figures,
    after: [pointTable(c)],
  });
}

/** `c` with the pseudo-axis "result" set to each point's label when there are no real axes. */
function axisOrLabel(c: Comparison, axis: string): Comparison {
  if (axis !== "result" || c.axes.length > 0) return c;
  return {
    ...c,
    points: c.points.map((p) => ({ ...p, settings: { ...p.settings, result: p.label } })),
  };
}

function pointTable(c: Comparison): string {
  const head = [
    "#",
    ...c.axes.map((a) => a.name),
    "steps",
    ...COMPARED_PAIRS.flatMap((r) => ONSET_KEYS.map((k) => `${pairName(r)} > ${k}`)),
    `largest ${pairName("B")}`,
    "held-out A",
    "held-out B",
    "result",
  ];
  const rows = c.points.map((p) => [
    String(p.index),
    ...c.axes.map((a) => settingText(p.settings[a.name])),
    p.data ? String(p.summary?.steps ?? p.data.lastStep + 1) : "no result",
    ...COMPARED_PAIRS.flatMap((r) => ONSET_KEYS.map((k) => onset(p.onsets[r]?.above[k]))),
    num(p.onsets.B?.max),
    pct(p.summary?.final.A?.heldout_acc),
    pct(p.summary?.final.B?.heldout_acc),
    p.result ?? "–",
  ]);
  return table(
    "Results",
    head,
    rows,
    "First step above each threshold of max |Δsoftmax| on the probe; never: not within the run.",
  );
}
