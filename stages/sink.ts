/**
 * The output sink: a WritableStream of monitor rows that writes CSV (header first, via the npm
 * `csv-stringify` package) or JSON Lines to a byte stream (stdout). Nothing but data is written.
 *
 * When the reader goes away (`| head`), the sink asks the run to stop and drops the rows still
 * coming instead of failing the stream: the steps in flight then finish as after a signal, so
 * the stop checkpoint and the summary describe the same weights. It never closes its byte
 * stream, so that the summary file exists before the reader of stdout sees the end.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { stringify } from "csv-stringify/sync";
import type { OutputRow } from "./monitor.ts";
import type { RunControl } from "./step.ts";

/** What the sink wrote: the summary records it, and the report checks its input against it. */
export interface RowsWritten {
  format: "csv" | "jsonl";
  /** Lines written after the CSV header: step rows and event rows. */
  count: number;
  /** Steps of the first and last step rows written (null: none). */
  first_step: number | null;
  last_step: number | null;
  /** SHA-256 (hex) of every byte written, the CSV header included. */
  sha256: string;
}

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

/** A write to stdout failed for another reason than a closed reader (`> /dev/full`). */
export class OutputError extends Error {}

/** Where the sink writes, and what it reports back. */
export interface SinkOptions {
  format: "csv" | "jsonl";
  /** The CSV header and the key order. */
  columns: string[];
  /** Told when the reader went away (`outputClosed`); the run then stops. */
  control?: RunControl;
  /** Called once, when the stream ends, with what reached `out`. */
  onClose?: (written: RowsWritten) => void;
}

/**
 * A sink writing rows to `out`; rows are written one line per write, so what reached `out` is
 * always whole lines. A write error other than a closed reader is one line naming stdout.
 */
export function outputSink(
  out: WritableStream<Uint8Array>,
  opts: SinkOptions,
): WritableStream<OutputRow> {
  const { format, columns, control } = opts;
  const writer = out.getWriter();
  const encoder = new TextEncoder();
  const hash = createHash("sha256");
  const written: Omit<RowsWritten, "sha256"> = {
    format,
    count: 0,
    first_step: null,
    last_step: null,
  };
  let closed = false;
  /** Writes one line; false when the reader has gone (then nothing more is written). */
  const write = async (line: string): Promise<boolean> => {
    if (closed) return false;
    const bytes = encoder.encode(line);
    try {
      await writer.write(bytes);
    } catch (e) {
      if (!isClosedPipe(e)) {
        const why = (e instanceof Error ? e.message : String(e)).replace(/\s*\(os error.*$/, "");
        throw new OutputError(`stdout: cannot write the ${format} rows: ${why}`);
      }
      closed = true;
      if (control) control.outputClosed = true;
      return false;
    }
    hash.update(bytes);
    return true;
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
  const line = (row: Exclude<OutputRow, { kind: "snapshot" }>): string => {
    if (format === "csv") {
      const c = cells(row);
      return stringify([columns.map((k) => c[k] ?? "")]);
    }
    const obj = row.kind === "event"
      ? { step: row.step, epoch: row.epoch, event: row.event, run: row.run, factor: row.factor }
      : Object.fromEntries(
        columns.filter((c) => row.values[c] !== undefined).map((c) => [c, row.values[c]]),
      );
    return JSON.stringify(obj) + "\n";
  };
  const finish = () => {
    writer.releaseLock();
    opts.onClose?.({ ...written, sha256: hash.digest("hex") });
  };
  return new WritableStream<OutputRow>({
    async start() {
      if (format === "csv") await write(stringify([columns]));
    },
    async write(row) {
      if (row.kind === "snapshot") return; // the checkpoint stage's, not output
      if (!await write(line(row))) return;
      written.count++;
      if (row.kind !== "step") return;
      const step = row.values.step;
      if (step === undefined) return;
      written.first_step ??= step;
      written.last_step = step;
    },
    close: finish,
    abort: finish,
  });
}
