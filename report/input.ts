/**
 * Opens one input (a file, or `-` for stdin) and reads it as rows, CSV or JSON Lines: by the
 * file's extension (`.csv`, `.jsonl`, `.ndjson`), else by its first character (`{` starts JSON
 * Lines). Only the first chunk is looked at before the stream is handed on whole. An input is
 * UTF-8 text, or refused as such at its first byte that is not.
 *
 * @module
 */

import type { Hash } from "node:crypto";
import { utf8Checked } from "../stages/data/byte_stream.ts";
import { cannotRead, notUtf8, ReportError } from "./errors.ts";
import { readCsv } from "./read_csv.ts";
import { readJsonl } from "./read_jsonl.ts";
import type { Row } from "./rows.ts";

/** An input's two formats. */
export type InputFormat = "csv" | "jsonl";

/** The format an extension names, or null when it names none. */
export function formatOfPath(path: string): InputFormat | null {
  if (/\.csv$/i.test(path)) return "csv";
  if (/\.(jsonl|ndjson)$/i.test(path)) return "jsonl";
  return null;
}

/** The name errors use for `path`. */
export function sourceName(path: string): string {
  return path === "-" ? "stdin" : path;
}

/**
 * The rows of `path` (`-`: stdin). Every byte read also goes into `hash` when given, so that once
 * the rows are read to the end it is the digest of the input exactly as the trainer wrote it (a
 * summary's `rows.sha256`). Throws a {@link ReportError} for an unreadable or empty input; the
 * rows fail with one for bytes that are not UTF-8.
 */
export async function readRows(path: string, hash?: Hash): Promise<AsyncGenerator<Row>> {
  const source = sourceName(path);
  let bytes: ReadableStream<Uint8Array>;
  try {
    bytes = path === "-" ? Deno.stdin.readable : (await Deno.open(path)).readable;
  } catch (e) {
    throw cannotRead(source, e);
  }
  if (hash) {
    bytes = bytes.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          hash.update(chunk);
          controller.enqueue(chunk);
        },
      }),
    );
  }
  const { first, stream } = await peek(bytes);
  if (first === null) throw new ReportError(`${source}: empty file`);
  const format = formatOfPath(path) ?? (first === "{" ? "jsonl" : "csv");
  const text = stream.pipeThrough(utf8Checked(() => notUtf8(source)));
  return format === "csv" ? readCsv(text, source) : readJsonl(text, source);
}

/**
 * The first non-blank character of `bytes` (null: there is none) and a stream that yields all
 * of `bytes` again, from the start.
 */
async function peek(
  bytes: ReadableStream<Uint8Array>,
): Promise<{ first: string | null; stream: ReadableStream<Uint8Array> }> {
  const reader = bytes.getReader();
  const seen: Uint8Array[] = [];
  let first: string | null = null;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    seen.push(value);
    const text = new TextDecoder().decode(value).replace(/^\uFEFF/, "").trimStart();
    if (text !== "") {
      first = text[0];
      break;
    }
  }
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const head = seen.shift();
      if (head) return controller.enqueue(head);
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return { first, stream };
}
