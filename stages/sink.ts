/**
 * The output sink: a WritableStream of monitor rows that writes CSV (header first, via the npm
 * `csv-stringify` package) or JSON Lines to a byte stream (stdout). Nothing but data is written.
 *
 * @module
 */

import { stringify } from "csv-stringify/sync";
import type { OutputRow } from "./monitor.ts";

/** Thrown when the reader of stdout went away (`| head`): the pipeline ends quietly. */
export class OutputClosedError extends Error {}

/** Formats a number for output: shortest round-trip text, empty for missing values. */
export function formatValue(v: number | undefined): string {
  if (v === undefined) return "";
  if (Number.isNaN(v)) return "NaN";
  return String(v);
}

/** True for the errors a write to a closed pipe raises. */
function isClosedPipe(e: unknown): boolean {
  return e instanceof Deno.errors.BrokenPipe ||
    (e instanceof Error && /broken pipe|EPIPE/i.test(e.message));
}

/**
 * A sink writing `rows` to `out` in `format`; `columns` fixes the CSV header and the key order.
 * Rows are written one line per write, so what reached `out` is always whole lines.
 */
export function outputSink(
  out: WritableStream<Uint8Array>,
  format: "csv" | "jsonl",
  columns: string[],
): WritableStream<OutputRow> {
  const writer = out.getWriter();
  const encoder = new TextEncoder();
  const write = async (line: string) => {
    try {
      await writer.write(encoder.encode(line));
    } catch (e) {
      if (isClosedPipe(e)) throw new OutputClosedError("stdout closed");
      throw e;
    }
  };
  const cells = (row: Exclude<OutputRow, { kind: "snapshot" }>): Record<string, string> => {
    if (row.kind === "event") {
      return {
        step: String(row.step),
        epoch: String(row.epoch),
        event: `${row.event} ${row.run} x${row.factor}`,
      };
    }
    return Object.fromEntries(columns.map((c) => [c, formatValue(row.values[c])]));
  };
  return new WritableStream<OutputRow>({
    async start() {
      if (format === "csv") await write(stringify([columns]));
    },
    async write(row) {
      if (row.kind === "snapshot") return; // the checkpoint stage's, not output
      if (format === "csv") {
        const c = cells(row);
        await write(stringify([columns.map((k) => c[k] ?? "")]));
        return;
      }
      const obj = row.kind === "event"
        ? { step: row.step, epoch: row.epoch, event: row.event, run: row.run, factor: row.factor }
        : Object.fromEntries(
          columns.filter((c) => row.values[c] !== undefined).map((c) => [c, row.values[c]]),
        );
      await write(JSON.stringify(obj) + "\n");
    },
    async close() {
      await writer.close().catch(() => {});
    },
    async abort() {
      await writer.abort().catch(() => {});
    },
  });
}
