/**
 * Whether a summary is the summary of the rows beside it. A summary of another run (a stale
 * `s.json` from an earlier run, a sweep point's summary next to another point's rows) would put
 * its accuracy and onsets on the page of rows it never saw, so a mismatch is an error. A summary
 * with `rows` (what the trainer wrote to stdout) must match the rows read, step range first,
 * then count, then the SHA-256 of the bytes; an older one must at least have as many steps as
 * the rows end at. A sweep point's summary must also carry its config file's `config_hash`.
 *
 * @module
 */

import { configHash, validateConfig } from "../pipeline/config.ts";
import type { RunData } from "./accumulate.ts";
import { ReportError } from "./errors.ts";
import { readJsonFile, type Summary } from "./summary_file.ts";

const steps = (first: number | null, last: number | null) =>
  first === null ? "no steps" : `steps ${first}..${last}`;
const digest = (sha256: string) => `sha256 ${sha256.slice(0, 12)}…`;

/**
 * Throws a one-line {@link ReportError} unless `summary` (named `name` in the error, e.g.
 * `--summary s.json`) describes the rows of `data`, whose bytes have the SHA-256 `sha256`.
 */
export function checkSummaryRows(
  summary: Summary,
  name: string,
  data: RunData,
  sha256: string,
): void {
  const fail = (described: string, held: string): never => {
    throw new ReportError(
      `${name} describes ${described}, ${data.source} holds ${held}: the summary is of another run`,
    );
  };
  const held = steps(data.firstStep, data.lastStep);
  const r = summary.rows;
  if (!r) {
    // Older summaries: `steps` is the last metered step + 1; rows cut short (stdout closed
    // early, `output_closed`) may end before it.
    const end = data.lastStep + 1;
    if (summary.output_closed ? end > summary.steps : end !== summary.steps) {
      fail(`${summary.steps} steps (0..${summary.steps - 1})`, held);
    }
    return;
  }
  const described = `${steps(r.first_step, r.last_step)} (${r.count} rows, ${digest(r.sha256)})`;
  if (r.first_step !== data.firstStep || r.last_step !== data.lastStep) fail(described, held);
  const count = data.rows + data.events.length + data.moreEvents;
  if (r.count !== count) fail(described, `${held} in ${count} rows`);
  if (r.sha256 !== sha256) fail(described, `those rows with other bytes (${digest(sha256)})`);
}

/**
 * Throws a one-line {@link ReportError} when `summary` has a `config_hash` that is not the hash
 * of the validated config file `configPath` (a sweep point's DIR/INDEX.json).
 */
export async function checkConfigHash(
  summary: Summary,
  name: string,
  configPath: string,
): Promise<void> {
  if (summary.config_hash === undefined) return;
  const raw = await readJsonFile(configPath);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ReportError(`${configPath}: expected a JSON object of settings`);
  }
  const hash = configHash(validateConfig(raw as Record<string, unknown>, configPath));
  if (hash !== summary.config_hash) {
    throw new ReportError(
      `${name}: config_hash ${summary.config_hash} is not that of ${configPath} (${hash}): ` +
        "the summary is of a run with other settings",
    );
  }
}
