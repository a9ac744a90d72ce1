/**
 * What `deno task report` was given, sorted out: one result file (or stdin) with its summary
 * for a run's report, or several result files or a sweep folder for a comparison. A `.json`
 * input is a summary, or a sweep's manifest (its folder is then the input). A result file's
 * summary is the `.json` given beside it with the same stem, else `<stem>.summary.json` next to
 * it when that exists.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { ReportError } from "./errors.ts";
import { formatOfPath } from "./input.ts";
import { looksLikeManifest, MANIFEST, type Manifest, parseManifest } from "./manifest.ts";
import type { InputFile } from "./same_file.ts";
import { readJsonFile } from "./summary_file.ts";

/** One result of a comparison: its files (null: not there) and its settings when known. */
export interface PointInput {
  result: string | null;
  summary: string | null;
  /** A sweep point's config file (the summary's `config_hash` must be its hash), else null. */
  config: string | null;
  /** The grid point's settings (from a manifest), else null (the summary's config is used). */
  settings: Record<string, unknown> | null;
  /** The grid index (manifest) or position among the inputs. */
  index: number;
}

/** What to draw. */
export type ReportInputs =
  | { mode: "run"; result: string; summary: string | null }
  | { mode: "compare"; points: PointInput[]; manifest: Manifest | null; source: string };

/** A file's name without its folder and its result/summary extension. */
export function stem(path: string): string {
  return basename(path).replace(/\.(summary\.json|json|csv|jsonl|ndjson)$/i, "");
}

/** What `path` is: a file, a folder, or nothing (missing or unreadable). */
async function kindOf(path: string): Promise<"file" | "folder" | null> {
  const info = await Deno.stat(path).catch(() => null);
  return info?.isFile ? "file" : info?.isDirectory ? "folder" : null;
}

const exists = async (path: string) => await kindOf(path) === "file";

/** Sorts the positional inputs (none: stdin) and the `--summary` flag into {@link ReportInputs}. */
export async function resolveInputs(
  args: string[],
  summaryFlag: string | undefined,
): Promise<ReportInputs> {
  const inputs = args.length > 0 ? args : ["-"];
  // With stdin, a .json is that run's summary (a manifest could not go with stdin), and is not
  // opened yet: a trainer piped in writes it just before stdout ends.
  const stdin = inputs.includes("-");
  const folders: string[] = [], results: string[] = [], summaries: string[] = [];
  for (const a of inputs) {
    if (a !== "-" && await kindOf(a) === "folder") folders.push(a);
    else if (a !== "-" && /\.json$/i.test(a)) {
      if (!stdin && looksLikeManifest(await readJsonFile(a))) folders.push(dirname(a));
      else summaries.push(a);
    } else results.push(a);
  }
  if (folders.length > 0) {
    if (folders.length > 1 || results.length > 0 || summaries.length > 0 || summaryFlag) {
      throw new ReportError("give one sweep folder alone, or result files (and their summaries)");
    }
    return await folderInputs(folders[0]);
  }
  if (results.length === 0) {
    throw new ReportError("no result file: give the trainer's CSV or JSON Lines output too");
  }
  if (results.includes("-") && results.length > 1) {
    throw new ReportError("stdin (-) can only be the one result of a run's report");
  }
  if (results.length === 1) {
    if (summaries.length + (summaryFlag ? 1 : 0) > 1) {
      throw new ReportError("more than one summary for one result file");
    }
    const summary = summaryFlag ?? summaries[0] ?? await sibling(results[0]);
    return { mode: "run", result: results[0], summary };
  }
  if (summaryFlag) {
    throw new ReportError(
      "--summary: only with one result file; for several, name each <stem>.summary.json",
    );
  }
  const points: PointInput[] = [];
  for (const [index, result] of results.entries()) {
    const given = summaries.find((s) => stem(s) === stem(result));
    const summary = given ?? await sibling(result);
    points.push({ result, summary, config: null, settings: null, index });
  }
  const unmatched = summaries.find((s) => !results.some((r) => stem(r) === stem(s)));
  if (unmatched) {
    throw new ReportError(`${unmatched}: no result file with the stem ${stem(unmatched)}`);
  }
  return { mode: "compare", points, manifest: null, source: `${results.length} result files` };
}

/** `<stem>.summary.json` next to a result file, when it exists. */
async function sibling(result: string): Promise<string | null> {
  if (result === "-") return null;
  const path = join(dirname(result), `${stem(result)}.summary.json`);
  return await exists(path) ? path : null;
}

/** A sweep folder: its manifest's points, or else every result file in it. */
async function folderInputs(dir: string): Promise<ReportInputs> {
  const manifestPath = join(dir, MANIFEST);
  if (await exists(manifestPath)) {
    const manifest = parseManifest(await readJsonFile(manifestPath), manifestPath);
    const points: PointInput[] = [];
    for (const p of manifest.points) {
      const candidates = ["jsonl", "csv", "ndjson"].map((ext) => join(dir, `${p.index}.${ext}`));
      let result: string | null = null;
      for (const c of candidates) if (result === null && await exists(c)) result = c;
      const summary = join(dir, `${p.index}.summary.json`);
      points.push({
        result,
        summary: await exists(summary) ? summary : null,
        config: join(dir, p.config),
        settings: p.settings,
        index: p.index,
      });
    }
    if (points.every((p) => p.result === null)) {
      throw new ReportError(`${dir}: no results yet (expected ${dir}/<index>.jsonl or .csv)`);
    }
    return { mode: "compare", points, manifest, source: dir };
  }
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && formatOfPath(e.name)) files.push(join(dir, e.name));
  }
  files.sort((a, b) => stem(a).localeCompare(stem(b), undefined, { numeric: true }));
  if (files.length === 0) {
    throw new ReportError(`${dir}: no ${MANIFEST} and no result files (*.csv, *.jsonl)`);
  }
  const points: PointInput[] = [];
  for (const [index, result] of files.entries()) {
    points.push({ result, summary: await sibling(result), config: null, settings: null, index });
  }
  return { mode: "compare", points, manifest: null, source: dir };
}

/**
 * The files named on the command line that {@link resolveInputs} opens before it returns (a
 * `.json`, to tell a summary from a manifest; a folder's manifest), with the `--summary` file and
 * the result files: each to be compared with the output before anything is read.
 */
export async function namedFiles(
  args: string[],
  summaryFlag: string | undefined,
): Promise<InputFile[]> {
  const files: InputFile[] = summaryFlag ? [{ path: summaryFlag, role: "the --summary file" }] : [];
  const others = args.filter((a) => a !== "-" && !/\.json$/i.test(a));
  for (const a of args) {
    if (a === "-") continue;
    if (await kindOf(a) === "folder") {
      files.push({ path: join(a, MANIFEST), role: `the manifest of ${a}` });
    } else if (/\.json$/i.test(a)) files.push({ path: a, role: "a summary or manifest" });
    else files.push({ path: a, role: others.length === 1 ? "the result file" : "a result file" });
  }
  return files;
}

/** Every file the report will read for `inputs` (those it found as well as those named). */
export function inputFiles(inputs: ReportInputs): InputFile[] {
  if (inputs.mode === "run") {
    const files: InputFile[] = [];
    if (inputs.result !== "-") files.push({ path: inputs.result, role: "the result file" });
    if (inputs.summary) files.push({ path: inputs.summary, role: "the result's summary" });
    return files;
  }
  const files: InputFile[] = inputs.manifest
    ? [{ path: join(inputs.source, MANIFEST), role: `the manifest of ${inputs.source}` }]
    : [];
  for (const p of inputs.points) {
    if (p.result) files.push({ path: p.result, role: "a result file" });
    if (p.summary) files.push({ path: p.summary, role: "a summary" });
    if (p.config) files.push({ path: p.config, role: "a sweep point's config" });
  }
  return files;
}
