/**
 * The plots of one run's report (README "Report and sweeps"): distances between A and every
 * other run with the onset thresholds, learning rates, the weight-norm ratio against its
 * prediction c_t, losses and accuracies, effective learning rates and angular updates. A plot
 * whose columns hold no values (run A alone has no distances) is left out.
 *
 * @module
 */

import { REL_DIFF, type RunData } from "./accumulate.ts";
import type { Mark } from "./phases.ts";
import type { PlotData, Trace } from "./plot.ts";
import type { Summary } from "./summary_file.ts";
import { pairName, RUN_COLORS } from "./theme.ts";
import { ONSET_THRESHOLDS } from "../core/onsets.ts";
import { columnTrace, type LogOptions, nonFiniteCount, present, toLogPlot } from "./traces.ts";

/** Everything the run's plots are drawn from. */
export interface RunPlotsInput {
  data: RunData;
  summary: Summary | null;
  marks: Mark[];
}

const EXACT: LogOptions = {
  zeros: "clamp",
  ceiling: ONSET_THRESHOLDS[0],
  zeroMeaning: "exact agreement",
};
const ZERO_FLOOR: LogOptions = { zeros: "clamp", zeroMeaning: "exact agreement" };
const POSITIVE: LogOptions = { zeros: "drop" };

/** The plots of one run, in page order. */
export function runPlots(input: RunPlotsInput): PlotData[] {
  const { data: d } = input;
  const pairs = d.runs.slice(1), colors = pairColors(pairs);
  const base = (title: string, yTitle: string, notes: string[] = []) => ({
    title,
    yTitle,
    notes,
    yScale: "linear" as const,
    colors: RUN_COLORS,
    marks: input.marks,
    steps: [d.firstStep, d.lastStep] as [number, number],
    traces: [] as Trace[],
  });
  const perPair = (metric: string, kind: string, mark: Trace["mark"] = "line") =>
    pairs.map((r) => columnTrace(d, `${r}.${metric}`, pairName(r), kind, mark));
  const perRun = (runs: readonly string[], metric: string, kind: string, mark?: Trace["mark"]) =>
    runs.map((r) => columnTrace(d, `${r}.${metric}`, r, kind, mark));
  const distance = (metric: string, title: string, yTitle: string): PlotData => ({
    ...base(title, yTitle, nonFinite(d, pairs, [`dist_${metric}`, `batch_${metric}`])),
    colors,
    thresholds: metric === "maxprob" ? ONSET_THRESHOLDS : undefined,
    traces: present(
      ...perPair(`dist_${metric}`, "probe"),
      ...perPair(`batch_${metric}`, "training batch"),
      ...perPair(`eval_${metric}`, "probe, eval mode", "point"),
    ),
  });
  const lrRuns = d.runs.filter((r) => r !== "A1" && r !== "A2");
  const ratioPairs = pairs.filter((r) => d.series.get(`${r}.c_pred`)?.count);
  const plots: PlotData[] = [
    toLogPlot(
      distance("maxprob", "Function-space distance to run A", "max |Δsoftmax| (probe)"),
      EXACT,
    ),
    toLogPlot(
      distance("rel_l2", "Relative logit distance to run A", "‖Δlogits‖ / ‖logits_A‖"),
      ZERO_FLOOR,
    ),
    toLogPlot({
      ...base("Angle between w_X and w_A over S", "angle (rad)"),
      colors,
      traces: present(...perPair("angle", "measured")),
    }, ZERO_FLOOR),
    toLogPlot({
      ...base("Learning rate of group S", "lr", lrNote(d)),
      traces: present(...perRun(lrRuns, "lr", "lr")),
    }, POSITIVE),
    ratioPlot(base("Weight-norm ratio ‖w_X‖/‖w_A‖ and its prediction c_t", "ratio"), {
      colors,
      traces: present(
        ...ratioPairs.flatMap((r) => [
          columnTrace(d, `${r}.norm_ratio`, pairName(r), "measured"),
          columnTrace(d, `${r}.c_pred`, pairName(r), "predicted c_t"),
        ]),
      ),
    }),
    toLogPlot({
      ...base("Relative difference of the norm ratio and c_t", "|ratio / c_t − 1|"),
      colors,
      traces: present(
        ...ratioPairs.map((r) => columnTrace(d, `${r}.${REL_DIFF}`, pairName(r), "measured")),
      ),
    }, ZERO_FLOOR),
    {
      ...base(
        "Training loss (batch, before the update)",
        "cross-entropy",
        nonFinite(d, d.runs, ["loss"]),
      ),
      traces: present(...perRun(d.runs, "loss", "training batch")),
    },
    accuracyPlot(base("Accuracy", "accuracy"), input),
    toLogPlot({
      ...base("Effective learning rate of group S", "lr / ‖w‖²"),
      traces: present(...perRun(d.runs, "eff_lr", "measured")),
    }, POSITIVE),
    toLogPlot({
      ...base("Angular update per step and its equilibrium", "angle (rad)"),
      traces: present(
        ...perRun(d.runs, "angular_update", "measured"),
        ...perRun(d.runs, "angular_pred", "equilibrium"),
      ),
    }, POSITIVE),
  ];
  return plots.filter((p) => p.traces.length > 0);
}

/** Pair A–X coloured as run X. */
function pairColors(pairs: readonly string[]): Record<string, string> {
  return Object.fromEntries(pairs.map((r) => [pairName(r), RUN_COLORS[r]]));
}

/** A note counting the non-finite values of `metrics` of `runs` (they are not drawn). */
function nonFinite(d: RunData, runs: readonly string[], metrics: string[]): string[] {
  const n = nonFiniteCount(d, runs.flatMap((r) => metrics.map((m) => `${r}.${m}`)));
  return n > 0 ? [`${n} NaN or infinite values not drawn`] : [];
}

/** Why A1 and A2 are not on the lr plot. */
function lrNote(d: RunData): string[] {
  const same = d.runs.filter((r) => r === "A1" || r === "A2");
  return same.length > 0 ? [`${same.join(", ")}: same lr as A`] : [];
}

/** The ratio plot: log axis when the ratio spans more than a decade (rescales), else linear. */
function ratioPlot(p: PlotData, part: Pick<PlotData, "colors" | "traces">): PlotData {
  const plot = { ...p, ...part };
  let lo = Infinity, hi = -Infinity;
  for (const t of plot.traces) {
    for (const q of t.points) [lo, hi] = [Math.min(lo, q.value), Math.max(hi, q.value)];
  }
  return lo > 0 && hi / lo > 10 ? toLogPlot(plot, POSITIVE) : plot;
}

/** Probe accuracy per run (lines), eval mode (points), held-out accuracy at the end (summary). */
function accuracyPlot(p: PlotData, input: RunPlotsInput): PlotData {
  const { data: d, summary } = input;
  const traces = present(
    ...d.runs.map((r) => columnTrace(d, `${r}.probe_acc`, r, "probe")),
    ...d.runs.map((r) => columnTrace(d, `${r}.eval_acc`, r, "probe, eval mode", "point")),
  );
  for (const r of d.runs) {
    const acc = summary?.final[r]?.heldout_acc;
    if (typeof acc === "number") {
      traces.push({
        series: r,
        kind: "held-out (end)",
        mark: "point",
        points: [{ step: d.lastStep, value: acc }],
      });
    }
  }
  return { ...p, traces };
}
