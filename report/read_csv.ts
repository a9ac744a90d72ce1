/**
 * Reads the trainer's CSV output as a stream of rows. The npm `csv-parse` package (its
 * Web-Streams build, as `stages/data/csv.ts` uses it) parses the bytes as they arrive, so a file
 * of a million rows is never held as text or as rows.
 *
 * @module
 */

import { parse } from "csv-parse/stream";
import { checkColumn, runsOf } from "./columns.ts";
import { ReportError } from "./errors.ts";
import { checkStep, parseEventCell, type Row } from "./rows.ts";

/** One parsed record with the line it started on (csv-parse's `info` option). */
interface CsvRecord {
  record: string[];
  info: { lines: number };
}

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const NON_FINITE: Readonly<Record<string, number>> = {
  NaN: NaN,
  Infinity: Infinity,
  "-Infinity": -Infinity,
};

/** A cell's number: undefined when empty (not measured); throws when it is not a number. */
export function parseCell(cell: string, column: string, where: string): number | undefined {
  if (cell === "") return undefined;
  if (DECIMAL.test(cell)) return Number(cell);
  if (cell in NON_FINITE) return NON_FINITE[cell];
  throw new ReportError(`${where}: column ${column}: not a number: ${JSON.stringify(cell)}`);
}

/**
 * The number of a cell every row fills (step, epoch): empty there is not "not measured", as in
 * a metric's column, but a broken row.
 */
function requiredCell(cell: string, column: string, where: string): number {
  const value = parseCell(cell, column, where);
  if (value === undefined) throw new ReportError(`${where}: column ${column}: empty cell`);
  return value;
}

/**
 * The rows of a CSV stream (header first). Throws a {@link ReportError} naming the source, line
 * and column for an unknown, duplicate or missing column, a non-numeric cell, an empty step or
 * epoch cell, a row of the wrong length, rows out of step order, or a file with no rows.
 */
export async function* readCsv(
  bytes: ReadableStream<Uint8Array>,
  source: string,
): AsyncGenerator<Row> {
  const records = bytes.pipeThrough(
    parse({ info: true, relax_column_count: true, skip_empty_lines: true, bom: true }),
  ) as ReadableStream<CsvRecord>;
  let header: string[] | undefined;
  let stepAt = -1, epochAt = -1, eventAt = -1, previous = 0, rows = 0;
  try {
    for await (const { record, info } of records) {
      const where = `${source}: line ${info.lines}`;
      if (!header) {
        header = readHeader(record, where);
        [stepAt, epochAt, eventAt] = ["step", "epoch", "event"].map((c) => header!.indexOf(c));
        continue;
      }
      if (record.length !== header.length) {
        throw new ReportError(
          `${where}: expected ${header.length} cells as in the header, found ${record.length}`,
        );
      }
      const step = requiredCell(record[stepAt], "step", where);
      const epoch = requiredCell(record[epochAt], "epoch", where);
      checkStep(step, previous, where);
      previous = step;
      if (eventAt >= 0 && record[eventAt] !== "") {
        yield parseEventCell(record[eventAt], step, epoch, where);
        continue;
      }
      const values: Record<string, number | undefined> = {};
      for (let i = 0; i < header.length; i++) {
        if (i !== stepAt && i !== epochAt && i !== eventAt) {
          values[header[i]] = parseCell(record[i], header[i], where);
        }
      }
      rows++;
      yield { kind: "step", step, epoch, values };
    }
  } catch (e) {
    if (e instanceof ReportError) throw e;
    // csv-parse's own errors (an unclosed quote, ...) carry their line in the message.
    throw new ReportError(`${source}: not valid CSV: ${(e as Error).message}`);
  }
  if (!header) throw new ReportError(`${source}: empty file`);
  if (rows === 0) throw new ReportError(`${source}: no data rows after the header`);
}

function readHeader(record: string[], where: string): string[] {
  const seen = new Set<string>();
  for (const name of record) {
    checkColumn(name, where);
    if (seen.has(name)) throw new ReportError(`${where}: column "${name}" appears twice`);
    seen.add(name);
  }
  runsOf(record, where);
  return record;
}
