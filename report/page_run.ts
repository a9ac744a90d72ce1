/**
 * The report of one run: what was run (summary), the pair and run tables, the configuration,
 * and the plots.
 *
 * @module
 */

import type { RunData } from "./accumulate.ts";
import { runPlots } from "./figures_run.ts";
import { num, onset, pct, settingText } from "./format.ts";
import { type Figure, keyValues, page, table } from "./html.ts";
import { runMarks } from "./marks.ts";
import { ONSET_KEYS } from "../core/onsets.ts";
import { plotSpec } from "./plot.ts";
import { renderSvg } from "./render.ts";
import { type Summary, summaryOnsets } from "./summary_file.ts";
import { pairName } from "./theme.ts";

/** The HTML page of one run. */
export async function runPage(d: RunData, summary: Summary | null, title: string): Promise<string> {
  const { marks, phaseSource } = runMarks(d, summary);
  const figures: Figure[] = [];
  for (const plot of runPlots({ data: d, summary, marks })) {
    const spec = plotSpec(plot);
    figures.push({ spec, svg: await renderSvg(spec) });
  }
  const phases = marks.filter((m) => m.kind === "phase");
  const events = d.events.length + d.moreEvents;
  const subtitle = [
    `${d.source}: ${d.rows} rows, steps ${d.firstStep}–${d.lastStep}; runs ${d.runs.join(", ")}` +
    (summary?.model ? `; model ${summary.model.description}` : "") +
    (summary?.adapter ? `; ${summary.adapter}` : ""),
    `Vertical lines: grey = schedule phase boundaries (from ${phaseSource}: ` +
    `${phases.length ? phases.map((m) => `${m.label} at ${m.step}`).join(", ") : "none"}), ` +
    `red = Lemma-2 rescales (${events}).`,
  ];
  return page({
    title,
    subtitle,
    before: [runTable(d, summary), pairTable(d, summary), perRunTable(d, summary)],
    figures,
    after: [configTable(summary)],
  });
}

function runTable(d: RunData, s: Summary | null): string {
  const rows: [string, string][] = [
    ["rows read", String(d.rows)],
    ["steps", `${d.firstStep}–${d.lastStep}`],
  ];
  if (s) {
    rows.push(["steps (summary)", String(s.steps)]);
    if (s.model) {
      rows.push([
        "model",
        `${s.model.description}, ${s.model.parameters} parameters (S ${s.model.s}, O ${s.model.o})`,
      ]);
    }
    if (s.adapter) rows.push(["adapter", s.adapter]);
    if (s.seconds !== undefined) {
      rows.push(["time", `${s.seconds.toFixed(1)} s (${num(s.steps_per_second)} steps/s)`]);
    }
    rows.push(["rescales", String(s.rescales ?? d.events.length + d.moreEvents)]);
    if (s.stopped) rows.push(["stopped", s.stopped]);
    if (s.output_closed) rows.push(["stopped", "stdout closed early"]);
    if (s.version) rows.push(["version", s.version]);
  } else rows.push(["rescales", String(d.events.length + d.moreEvents)]);
  return keyValues("Run", rows, s ? "" : "No summary: give the trainer's --summary file too.");
}

function pairTable(d: RunData, s: Summary | null): string {
  const rows: string[][] = [];
  for (const r of d.runs.slice(1)) {
    const sp = s?.pairs[r], computed = d.onsets[r];
    const probe = sp ? summaryOnsets(sp, "probe") : computed?.probe;
    const batch = (sp && summaryOnsets(sp, "batch")) ?? computed?.batch;
    for (const [on, o] of [["probe batch", probe], ["training batch", batch]] as const) {
      if (!o) continue;
      rows.push([
        pairName(r),
        on,
        num(o.max),
        num(o.final),
        ...ONSET_KEYS.map((k) => onset(o.above[k])),
      ]);
    }
  }
  const note = s
    ? "From the summary (the whole run, also before a resume)."
    : "Computed from the rows (metered steps only).";
  return table(
    "Distance to run A: max |Δsoftmax|",
    ["pair", "measured on", "largest", "final", ...ONSET_KEYS.map((k) => `first step > ${k}`)],
    rows,
    note,
  );
}

function perRunTable(d: RunData, s: Summary | null): string {
  const rows = d.runs.map((r) => {
    const f = s?.final[r];
    return [
      r,
      num(f?.train_loss ?? d.lastValues[`${r}.loss`]),
      pct(f?.probe_acc ?? d.lastValues[`${r}.probe_acc`]),
      pct(d.lastValues[`${r}.eval_acc`]),
      pct(f?.heldout_acc),
    ];
  });
  return table(
    "Final values per run",
    ["run", "train loss", "probe acc", "probe acc (eval mode)", "held-out acc (eval mode)"],
    rows,
    "Last metered values; held-out accuracy over the whole held-out split, from the summary.",
  );
}

function configTable(s: Summary | null): string {
  if (!s?.config) return "";
  const pairs = Object.entries(s.config).map(([k, v]): [string, string] => [k, settingText(v)]);
  return keyValues("Configuration (from the summary)", pairs, "", 5);
}
