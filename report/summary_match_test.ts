/**
 * A summary must be of the rows beside it: by its `rows` (step range, count, SHA-256 of the
 * bytes), else by its `steps`; a sweep point's summary by its config's hash. Each mismatch is
 * one line naming both files and what differs.
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { configHash, validateConfig } from "../pipeline/config.ts";
import { accumulate, type RunData } from "./accumulate.ts";
import { ReportError } from "./errors.ts";
import { readRows } from "./input.ts";
import type { Summary } from "./summary_file.ts";
import { checkConfigHash, checkSummaryRows } from "./summary_match.ts";
import { syntheticCsv, withDir } from "./test_fixtures.ts";

/** The rows of a synthetic CSV of `rows` steps (one rescale event) and its bytes' SHA-256. */
async function readBack(dir: string, rows: number): Promise<{ data: RunData; sha256: string }> {
  const path = join(dir, "run.csv");
  const text = [...syntheticCsv({ rows, rescaleAt: 3 })].join("");
  Deno.writeTextFileSync(path, text);
  const hash = createHash("sha256");
  const data = await accumulate(await readRows(path, hash), "run.csv", { capacity: 100 });
  const sha256 = hash.digest("hex");
  if (sha256 !== createHash("sha256").update(text).digest("hex")) throw new Error("not the bytes");
  return { data, sha256 };
}

function summary(extra: Partial<Summary>): Summary {
  return { steps: 10, pairs: {}, final: {}, ...extra };
}

function assertThrows(f: () => unknown, message: string): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof ReportError)) throw e;
    if (e.message !== message) throw new Error(`${JSON.stringify(e.message)} !== ${message}`);
    return;
  }
  throw new Error(`accepted; expected ${message}`);
}

Deno.test("a summary's rows must be the rows read: steps, then count, then the bytes", () =>
  withDir(async (dir) => {
    const { data, sha256 } = await readBack(dir, 10);
    const rows = { format: "csv" as const, count: 11, first_step: 0, last_step: 9, sha256 };
    checkSummaryRows(summary({ rows }), "--summary s.json", data, sha256);
    const other = "ab12".repeat(16);
    assertThrows(
      () =>
        checkSummaryRows(
          summary({ rows: { ...rows, count: 31, last_step: 29, sha256: other } }),
          "--summary s.json",
          data,
          sha256,
        ),
      "--summary s.json describes steps 0..29 (31 rows, sha256 ab12ab12ab12…), run.csv holds " +
        "steps 0..9: the summary is of another run",
    );
    assertThrows(
      () => checkSummaryRows(summary({ rows: { ...rows, count: 10 } }), "s.json", data, sha256),
      `s.json describes steps 0..9 (10 rows, sha256 ${sha256.slice(0, 12)}…), run.csv holds ` +
        "steps 0..9 in 11 rows: the summary is of another run",
    );
    assertThrows(
      () => checkSummaryRows(summary({ rows: { ...rows, sha256: other } }), "s.json", data, sha256),
      "s.json describes steps 0..9 (11 rows, sha256 ab12ab12ab12…), run.csv holds those rows " +
        `with other bytes (sha256 ${sha256.slice(0, 12)}…): the summary is of another run`,
    );
    assertThrows(
      () =>
        checkSummaryRows(
          summary({ rows: { ...rows, count: 0, first_step: null, last_step: null } }),
          "s.json",
          data,
          sha256,
        ),
      `s.json describes no steps (0 rows, sha256 ${sha256.slice(0, 12)}…), run.csv holds ` +
        "steps 0..9: the summary is of another run",
    );
  }));

Deno.test("an older summary (no rows) must end where the rows end, unless stdout closed", () =>
  withDir(async (dir) => {
    const { data, sha256 } = await readBack(dir, 10);
    checkSummaryRows(summary({ steps: 10 }), "s.json", data, sha256);
    assertThrows(
      () => checkSummaryRows(summary({ steps: 30 }), "--summary s.json", data, sha256),
      "--summary s.json describes 30 steps (0..29), run.csv holds steps 0..9: " +
        "the summary is of another run",
    );
    // Stdout closed early: the rows stop before the run did, never after.
    checkSummaryRows(summary({ steps: 30, output_closed: true }), "s.json", data, sha256);
    assertThrows(
      () => checkSummaryRows(summary({ steps: 5, output_closed: true }), "s.json", data, sha256),
      "s.json describes 5 steps (0..4), run.csv holds steps 0..9: the summary is of another run",
    );
  }));

Deno.test("a sweep point's summary carries its config file's hash", () =>
  withDir(async (dir) => {
    const path = join(dir, "3.json");
    Deno.writeTextFileSync(path, JSON.stringify({ lr: 0.05, summary: "elsewhere.json" }));
    const hash = configHash(validateConfig({ lr: 0.05 }, "test"));
    await checkConfigHash(summary({ config_hash: hash }), "3.summary.json", path);
    await checkConfigHash(summary({}), "3.summary.json", path);
    const other = configHash(validateConfig({ lr: 0.1 }, "test"));
    await checkConfigHash(summary({ config_hash: other }), "3.summary.json", path).then(
      () => Promise.reject(new Error("another config's summary accepted")),
      (e) => {
        const want = `3.summary.json: config_hash ${other} is not that of ${path} (${hash}): ` +
          "the summary is of a run with other settings";
        if ((e as Error).message !== want) throw e;
      },
    );
  }));
