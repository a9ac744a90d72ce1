/**
 * Opening data files as byte streams, transparently gunzipped, and reading exact byte counts
 * from them with one-line {@link DataError}s for truncation and corrupt compression.
 *
 * Files are never read whole into memory and never handed to an external tool: the file's own
 * `ReadableStream` is piped through `DecompressionStream("gzip")` when needed.
 *
 * @module
 */

import { DataError } from "./errors.ts";

/** A file's content as a stream of (decompressed) bytes. */
export interface DataStream {
  /** The decompressed bytes. */
  stream: ReadableStream<Uint8Array>;
  /** Whether the file is gzip (by name or by its first two bytes), so errors can say so. */
  gzip: boolean;
}

/** Bytes backed by a plain ArrayBuffer, as files and `DecompressionStream` produce them. */
type Bytes = Uint8Array<ArrayBuffer>;

/** The two bytes every gzip member starts with. */
const GZIP_MAGIC = [0x1f, 0x8b];

/**
 * Opens `path` as a byte stream, gunzipping it when the name ends in `.gz` or the content starts
 * with the gzip magic `1f 8b`. A missing or unreadable file is a {@link DataError}.
 */
export async function openDataStream(path: string): Promise<DataStream> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw new DataError(path, "open", `cannot open: ${errorText(e)}`);
  }
  // Peek at the first chunk for the gzip magic, then hand it back at the front of the stream.
  const reader = file.readable.getReader();
  let first: Bytes;
  try {
    const { done, value } = await reader.read();
    first = done ? new Uint8Array(0) : value;
  } catch (e) {
    await reader.cancel().catch(() => {});
    throw new DataError(path, "byte 0", `cannot read: ${errorText(e)}`);
  }
  const bytes = withPrefix(first, reader);
  const gzip = path.endsWith(".gz") ||
    (first.length >= 2 && first[0] === GZIP_MAGIC[0] && first[1] === GZIP_MAGIC[1]);
  return { stream: gzip ? bytes.pipeThrough(new DecompressionStream("gzip")) : bytes, gzip };
}

/** A stream that yields `first` and then whatever `rest` still holds. */
function withPrefix(
  first: Bytes,
  rest: ReadableStreamDefaultReader<Bytes>,
): ReadableStream<Bytes> {
  let pending: Bytes | null = first.length > 0 ? first : null;
  return new ReadableStream<Bytes>({
    async pull(controller) {
      if (pending) {
        controller.enqueue(pending);
        pending = null;
        return;
      }
      const { done, value } = await rest.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return rest.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Describes a byte offset of the decompressed data as a position (`record 12`, `header`). */
export type PositionAt = (offset: number) => string;

/** Reads exact byte counts from a {@link DataStream}, counting the offset as it goes. */
export class ByteReader {
  /** Bytes delivered so far (offset into the decompressed data). */
  offset = 0;
  readonly #file: string;
  readonly #gzip: boolean;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);
  #chunkPos = 0;
  #done = false;

  /** Wraps `data`, read from `file` (named in errors). */
  constructor(file: string, data: DataStream) {
    this.#file = file;
    this.#gzip = data.gzip;
    this.#reader = data.stream.getReader();
  }

  /**
   * Fills `target` from the stream and returns how many bytes it got: `target.length` unless
   * the data ended first. A failing stream (corrupt gzip, I/O error) becomes a DataError at the
   * position `positionAt` gives for the offset reached.
   */
  async readInto(target: Uint8Array, positionAt: PositionAt): Promise<number> {
    let filled = 0;
    while (filled < target.length) {
      if (this.#chunkPos === this.#chunk.length && !(await this.#nextChunk(positionAt))) break;
      const take = Math.min(target.length - filled, this.#chunk.length - this.#chunkPos);
      target.set(this.#chunk.subarray(this.#chunkPos, this.#chunkPos + take), filled);
      this.#chunkPos += take;
      filled += take;
      this.offset += take;
    }
    return filled;
  }

  /** Reads to the end and returns how many bytes were left (0 when the data ended exactly). */
  async drain(positionAt: PositionAt): Promise<number> {
    let left = this.#chunk.length - this.#chunkPos;
    this.#chunkPos = this.#chunk.length;
    while (await this.#nextChunk(positionAt)) {
      left += this.#chunk.length;
      this.#chunkPos = this.#chunk.length;
    }
    this.offset += left;
    return left;
  }

  /** Stops reading early and releases the file. */
  async cancel(): Promise<void> {
    if (!this.#done) await this.#reader.cancel().catch(() => {});
    this.#done = true;
  }

  /** Loads the next non-empty chunk; false at the end of the data. */
  async #nextChunk(positionAt: PositionAt): Promise<boolean> {
    while (!this.#done) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await this.#reader.read();
      } catch (e) {
        this.#done = true;
        const what = this.#gzip ? "corrupt or truncated gzip data" : "read failed";
        throw new DataError(this.#file, positionAt(this.offset), `${what} (${errorText(e)})`);
      }
      if (result.done) {
        this.#done = true;
        return false;
      }
      if (result.value.length > 0) {
        this.#chunk = result.value;
        this.#chunkPos = 0;
        return true;
      }
    }
    return false;
  }
}

/** The message of an unknown thrown value, on one line. */
export function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s+/g, " ").trim();
}

/**
 * Passes bytes on unchanged once a fatal UTF-8 decoder has taken them, failing with `fail()` at
 * the first byte that is not UTF-8 (or at the end, inside a character): a reader of text would
 * otherwise see replacement characters and name them as a bad cell or column.
 */
export function utf8Checked(fail: () => Error): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const check = (decode: () => void) => {
    try {
      decode();
    } catch {
      throw fail();
    }
  };
  return new TransformStream({
    transform(chunk, controller) {
      check(() => decoder.decode(chunk, { stream: true }));
      controller.enqueue(chunk);
    },
    flush: () => check(() => decoder.decode()),
  });
}
