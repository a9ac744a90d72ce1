/**
 * CSV datasets: one label column and numeric feature columns, comma-separated, header optional,
 * raw or gzipped. The file is parsed as a stream by the npm `csv-parse` package (its Web-Streams
 * `TransformStream` build, `csv-parse/stream`), so a large file is never held as text.
 *
 * Rules: blank lines are skipped; cells are trimmed; every row has as many cells as the first;
 * features are finite decimal numbers (no empty cells, NaN or infinities); labels are integers in
 * `0..CSV_MAX_LABEL`, and `classes` is the largest label + 1.
 *
 * @module
 */

import { parse } from "csv-parse/stream";
import { errorText, openDataStream, utf8Checked } from "./byte_stream.ts";
import { DataError } from "./errors.ts";
import type { Dataset } from "./types.ts";

/** How to read a CSV file's columns. */
export interface CsvOptions {
  /**
   * The label column: a header name, or a 0-based index (negative counts from the end, -1 is the
   * last column). Default: the column named `label` (any case) when there is a header, else 0.
   */
  labelColumn?: string | number;
  /**
   * Whether the first row is a header. `"auto"` (default): it is when any of its cells is not
   * a number, so a header whose names are all numbers needs `true`.
   */
  header?: boolean | "auto";
}

/** The largest label accepted; a bigger one almost always means the wrong label column. */
export const CSV_MAX_LABEL = 65535;

/** The column layout of a CSV file, fixed by its first row. */
interface CsvColumns {
  /** Cells per row. */
  cells: number;
  /** Index of the label column. */
  label: number;
  /** Column names from the header, or null when the file has none. */
  names: string[] | null;
}

/** One parsed CSV record with the line it started on (csv-parse's `info` option). */
interface CsvRecord {
  record: string[];
  info: { lines: number };
}

/**
 * Loads a CSV file as a dataset with `channels` = `dim` (normalised per feature). When
 * `expectCells` is given (a test file read after its train file) its rows must have that many
 * cells. Errors name the line (1-based) and, for a cell, the column (1-based).
 */
export async function loadCsv(
  path: string,
  options: CsvOptions,
  name: string,
  expectCells?: number,
): Promise<Dataset> {
  const { stream, gzip } = await openDataStream(path);
  // UTF-8 strictly: a binary file is named as such, not as cells of replacement characters.
  const notText = () => new DataError(path, "encoding", "not UTF-8 text (a binary file?)");
  const records = stream.pipeThrough(utf8Checked(notText)).pipeThrough(
    parse({ info: true, relax_column_count: true, skip_empty_lines: true, trim: true, bom: true }),
  ) as ReadableStream<CsvRecord>;
  let layout: CsvColumns | undefined;
  const rows = new GrowingRows();
  let line = 0;
  try {
    for await (const { record, info } of records) {
      line = info.lines;
      if (!layout) {
        layout = columnsOf(path, line, record, options);
        if (expectCells !== undefined && layout.cells !== expectCells) {
          throw new DataError(
            path,
            `line ${line}`,
            `expected ${expectCells} cells as in the training file, found ${layout.cells}`,
          );
        }
        if (layout.names) continue;
      }
      if (record.length !== layout.cells) {
        throw new DataError(
          path,
          `line ${line}`,
          `expected ${layout.cells} cells, found ${record.length}`,
        );
      }
      rows.push(path, line, record, layout);
    }
  } catch (e) {
    if (e instanceof DataError) throw e;
    const opened = quoteOpenedAt(e);
    if (opened !== undefined) {
      throw new DataError(path, `line ${opened}`, "a quote opens here and is never closed");
    }
    const csvLine = (e as { lines?: unknown }).lines;
    if (typeof csvLine === "number") throw new DataError(path, `line ${csvLine}`, errorText(e));
    // The decompressor or the file failed. No line number: how far parsing got before the
    // failure surfaced depends on chunk timing, and the same file must give the same message.
    if (gzip) throw new DataError(path, "gzip data", `corrupt or truncated (${errorText(e)})`);
    throw new DataError(path, "read", `failed (${errorText(e)})`);
  }
  if (rows.n === 0) {
    throw new DataError(path, `line ${Math.max(1, line)}`, "empty dataset: no data rows");
  }
  return rows.toDataset(name, path, layout!);
}

/**
 * The line where an unclosed quote opens: csv-parse reports the end of the file, and counts the
 * records and blank lines before the one that failed (a record spanning lines before it would
 * make this an underestimate; numeric data has none).
 */
function quoteOpenedAt(e: unknown): number | undefined {
  const err = e as { code?: unknown; records?: unknown; empty_lines?: unknown };
  if (err.code !== "CSV_QUOTE_NOT_CLOSED" || typeof err.records !== "number") return undefined;
  return err.records + (typeof err.empty_lines === "number" ? err.empty_lines : 0) + 1;
}

/** Reads the column layout from the first row (on `line`); a header is recognised per `options`. */
function columnsOf(path: string, line: number, first: string[], options: CsvOptions): CsvColumns {
  const cells = first.length;
  const header = options.header ?? "auto";
  const isHeader = header === "auto" ? first.some((c) => !looksNumeric(c)) : header;
  const names = isHeader ? first : null;
  const labelNamed = names?.findIndex((c) => c.toLowerCase() === "label") ?? -1;
  const wanted = options.labelColumn ?? Math.max(0, labelNamed);
  let label: number;
  if (typeof wanted === "string") {
    if (!names) {
      throw new DataError(
        path,
        `line ${line}`,
        `label column "${wanted}" is given by name but the file has no header row`,
      );
    }
    label = names.indexOf(wanted);
    if (label < 0) {
      const shown = names.slice(0, 8).map((c) => `"${c}"`).join(", ");
      throw new DataError(
        path,
        `line ${line}`,
        `no column named "${wanted}" (columns: ${shown}${names.length > 8 ? ", …" : ""})`,
      );
    }
  } else {
    label = wanted < 0 ? cells + wanted : wanted;
    if (!Number.isInteger(label) || label < 0 || label >= cells) {
      throw new DataError(
        path,
        `line ${line}`,
        `label column ${wanted} does not exist: rows have ${cells} cells`,
      );
    }
  }
  if (cells < 2) {
    throw new DataError(path, `line ${line}`, "need a label column and at least one feature");
  }
  return { cells, label, names };
}

/** True for a cell that reads as a number, including NaN and infinities (bad values, not names). */
function looksNumeric(cell: string): boolean {
  return cell !== "" && (!Number.isNaN(Number(cell)) || NON_FINITE.test(cell));
}

/** Spellings of NaN and infinity that tools write into CSV files. */
const NON_FINITE = /^[+-]?(nan|inf|infinity)$/i;

/** Rows appended to buffers that double as needed (the row count is unknown until the end). */
class GrowingRows {
  n = 0;
  maxLabel = -1;
  /** The line of the first row with the largest label. */
  maxLabelLine = 0;
  #x = new Float32Array(0);
  #y = new Int32Array(0);

  /** Parses and appends one record; bad cells are DataErrors at `line`, column (1-based). */
  push(path: string, line: number, record: string[], layout: CsvColumns): void {
    const dim = layout.cells - 1;
    if (this.n === this.#y.length) this.#grow(dim);
    const at = (col: number) => `line ${line}, column ${col + 1}`;
    const named = (col: number) => layout.names ? ` in column "${layout.names[col]}"` : "";
    const labelText = record[layout.label];
    const label = Number(labelText);
    if (labelText === "" || !Number.isInteger(label) || label < 0 || label > CSV_MAX_LABEL) {
      throw new DataError(
        path,
        at(layout.label),
        `label "${labelText}" is not an integer in 0..${CSV_MAX_LABEL}`,
      );
    }
    this.#y[this.n] = label;
    if (label > this.maxLabel) {
      this.maxLabel = label;
      this.maxLabelLine = line;
    }
    let k = this.n * dim;
    for (let col = 0; col < record.length; col++) {
      if (col === layout.label) continue;
      const text = record[col];
      const v = Math.fround(Number(text));
      if (text === "" || !Number.isFinite(v)) {
        throw new DataError(path, at(col), `${badCell(text)}${named(col)}`);
      }
      this.#x[k++] = v;
    }
    this.n++;
  }

  /** The rows so far as a dataset; `classes` is the largest label + 1. */
  toDataset(name: string, source: string, layout: CsvColumns): Dataset {
    const dim = layout.cells - 1;
    return {
      name,
      x: this.#x.slice(0, this.n * dim),
      y: this.#y.slice(0, this.n),
      n: this.n,
      dim,
      classes: this.maxLabel + 1,
      channels: dim,
      source,
      largestLabelAt: { file: source, position: `line ${this.maxLabelLine}` },
    };
  }

  #grow(dim: number): void {
    const rows = Math.max(1024, this.#y.length * 2);
    const x = new Float32Array(rows * dim);
    x.set(this.#x);
    const y = new Int32Array(rows);
    y.set(this.#y);
    this.#x = x;
    this.#y = y;
  }
}

/** Why a feature cell is not a usable number. */
function badCell(text: string): string {
  if (text === "") return "empty cell";
  if (/^[+-]?nan$/i.test(text)) return `NaN value "${text}"`;
  if (NON_FINITE.test(text)) return `infinite value "${text}"`;
  if (!Number.isNaN(Number(text))) return `value "${text}" is outside the float32 range`;
  return `not a number: "${text.length > 40 ? text.slice(0, 40) + "…" : text}"`;
}
