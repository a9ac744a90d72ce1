/**
 * The data of a comparison page: every result of a sweep (or of several result files) read in
 * turn, keeping only the distances A–B and A–A1 (reduced to the plot's pixel columns), the
 * onsets, and the settings that differ between the results (the axes).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { defaultConfig } from "../pipeline/config.ts";
import { accumulate, type RunData } from "./accumulate.ts";
import { log } from "./cli.ts";
import { settingText } from "./format.ts";
import { readRows } from "./input.ts";
import type { PointInput } from "./inputs.ts";
import type { Manifest } from "./manifest.ts";
import type { Onsets } from "../core/onsets.ts";
import { readSummary, type Summary, summaryOnsets } from "./summary_file.ts";
import { checkConfigHash, checkSummaryRows } from "./summary_match.ts";
import { PLOT_WIDTH } from "./theme.ts";

/** The pairs a comparison shows: A–B (the equivalence) and A–A1 (the one-ulp control). */
export const COMPARED_PAIRS = ["B", "A1"] as const;

/** Settings that change the output or the bookkeeping, not the trajectory: never an axis. */
const NOT_AXES = new Set([
  "summary",
  "format",
  "quiet",
  "in-flight",
  "checkpoint-dir",
  "checkpoint-every",
  "keep",
  "resume",
  "save-init",
]);

/** One compared result. */
export interface ComparedPoint {
  index: number;
  /** The axis values as text, e.g. "lr=0.05 seed=3" (the file name when there are no axes). */
  label: string;
  settings: Record<string, unknown>;
  result: string | null;
  data: RunData | null;
  summary: Summary | null;
  /** Probe-distance onsets of A–B and A–A1 (null: the pair is not in this result). */
  onsets: Record<string, Onsets | null>;
}

/** A comparison: its axes (with their values in order) and its points. */
export interface Comparison {
  source: string;
  axes: { name: string; values: unknown[] }[];
  points: ComparedPoint[];
  firstStep: number;
  lastStep: number;
}

/**
 * Reads every point's result and summary (one file at a time: memory stays bounded), checking
 * that each summary is of its point's rows and config.
 */
export async function loadComparison(
  points: PointInput[],
  manifest: Manifest | null,
  source: string,
): Promise<Comparison> {
  const loaded: Omit<ComparedPoint, "label">[] = [];
  const known: (Record<string, unknown> | null)[] = [];
  for (const p of points) {
    const summary = p.summary ? await readSummary(p.summary) : null;
    const hash = createHash("sha256");
    const data = p.result
      ? await accumulate(await readRows(p.result, hash), p.result, {
        capacity: 2 * PLOT_WIDTH,
        keep: (c) => COMPARED_PAIRS.some((r) => c === `${r}.dist_maxprob`),
      })
      : null;
    if (p.summary && summary) {
      if (data) checkSummaryRows(summary, p.summary, data, hash.digest("hex"));
      if (p.config) await checkConfigHash(summary, p.summary, p.config);
    }
    const onsets: Record<string, Onsets | null> = {};
    for (const r of COMPARED_PAIRS) onsets[r] = pairOnsets(summary, data, r);
    const settings = p.settings ?? summary?.config ?? null;
    known.push(settings);
    loaded.push({
      index: p.index,
      settings: settings ?? {},
      result: p.result,
      data,
      summary,
      onsets,
    });
  }
  const unknown = loaded.filter((_, i) => known[i] === null).map((p) => p.result ?? `#${p.index}`);
  if (!manifest && unknown.length > 0) {
    log(
      `report: no summary with settings for ${unknown.join(", ")}: only settings known for every ` +
        "result are compared, so none is an axis",
    );
  }
  const axes = manifest?.axes ?? differingSettings(known);
  const withData = loaded.filter((p) => p.data !== null);
  return {
    source,
    axes,
    points: loaded.map((p) => ({ ...p, label: labelOf(p, axes.map((a) => a.name)) })),
    firstStep: Math.min(...withData.map((p) => p.data!.firstStep)),
    lastStep: Math.max(...withData.map((p) => p.data!.lastStep)),
  };
}

/** The summary's onsets of pair A–`run` (the whole run), else those computed from the rows. */
function pairOnsets(s: Summary | null, d: RunData | null, run: string): Onsets | null {
  const sp = s?.pairs[run];
  return sp ? summaryOnsets(sp, "probe") : d?.onsets[run]?.probe ?? null;
}

/**
 * The settings whose values differ between points, each with its values in order. Only settings
 * known for every point are compared: none when a point's settings are unknown (null: no summary
 * with a config), and none that a point's config lacks while the trainer always writes it (a
 * summary of an older trainer, before the setting existed). A setting without a default (lr-o)
 * is absent from a config where it was not set, so there its absence is a value.
 */
export function differingSettings(all: (Record<string, unknown> | null)[]): Comparison["axes"] {
  const configs = all.filter((s) => s !== null);
  if (configs.length < all.length) return [];
  const always = defaultConfig() as Record<string, unknown>;
  const keys = [...new Set(configs.flatMap((s) => Object.keys(s)))].filter((k) =>
    !NOT_AXES.has(k) && (!(k in always) || configs.every((s) => k in s))
  );
  const axes: Comparison["axes"] = [];
  for (const k of keys) {
    const texts = new Map<string, unknown>();
    for (const s of configs) texts.set(JSON.stringify(s[k]) ?? "undefined", s[k]);
    if (texts.size < 2) continue;
    const values = [...texts.values()];
    if (values.every((v) => typeof v === "number")) (values as number[]).sort((a, b) => a - b);
    axes.push({ name: k, values });
  }
  return axes;
}

function labelOf(p: Omit<ComparedPoint, "label">, axes: string[]): string {
  if (axes.length === 0) return p.result ?? `#${p.index}`;
  return axes.map((a) => `${a}=${settingText(p.settings[a])}`).join(" ");
}
