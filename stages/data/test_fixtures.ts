/**
 * Helpers for the data stage's tests: tiny files in every format, gzip, and assertions (the
 * project has no `@std/assert`).
 *
 * @module
 */

import { DataError } from "./errors.ts";

/** Throws with `message` unless `cond` holds. */
export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

/** Throws unless `actual` and `expected` have the same JSON form (typed arrays as arrays). */
export function assertEquals(actual: unknown, expected: unknown, what = "value"): void {
  const a = JSON.stringify(plain(actual)), e = JSON.stringify(plain(expected));
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

function plain(v: unknown): unknown {
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    return Array.from(v as unknown as ArrayLike<number>);
  }
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

/** Throws unless `a` and `b` agree within `tol`. */
export function assertClose(a: number, b: number, tol: number, what: string): void {
  if (!(Math.abs(a - b) <= tol)) throw new Error(`${what}: expected ${b} ± ${tol}, got ${a}`);
}

/**
 * Awaits `run` and checks it fails with a one-line DataError for `file` at `position` (exact, or
 * a pattern) whose problem matches `problem`.
 */
export async function assertDataError(
  run: () => Promise<unknown> | unknown,
  file: string,
  position: string | RegExp,
  problem: RegExp,
): Promise<DataError> {
  let error: unknown;
  try {
    await run();
  } catch (e) {
    error = e;
  }
  if (!(error instanceof DataError)) {
    throw new Error(`expected a DataError at ${file}: ${position}, got ${String(error)}`);
  }
  const { message } = error;
  assert(!/[\r\n]/.test(message), `message "${message}" should be one line`);
  assert(error.file === file, `message "${message}" should name ${file}`);
  const positionOk = typeof position === "string"
    ? error.position === position
    : position.test(error.position);
  assert(positionOk, `message "${message}" should have position ${position}`);
  assert(message === `${file}: ${error.position}: ${error.problem}`, `bad format: "${message}"`);
  assert(problem.test(error.problem), `problem in "${message}" should match ${problem}`);
  return error;
}

/** Gzips `bytes` in memory. */
export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Writes `bytes` to `path`, gzipped first when the name ends in `.gz`. */
export async function writeData(path: string, bytes: Uint8Array): Promise<string> {
  await Deno.writeFile(path, path.endsWith(".gz") ? await gzip(bytes) : bytes);
  return path;
}

/** The bytes of an IDX file: `magic`, big-endian `dims`, then `body`. */
export function idxBytes(magic: number, dims: number[], body: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, magic);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(body, 4 + 4 * dims.length);
  return out;
}

/** The bytes of a CIFAR-10 batch: one record per label, pixels from `pixel(record, byte)`. */
export function cifarBytes(labels: number[], pixel: (r: number, b: number) => number): Uint8Array {
  const out = new Uint8Array(labels.length * 3073);
  labels.forEach((label, r) => {
    out[r * 3073] = label;
    for (let b = 0; b < 3072; b++) out[r * 3073 + 1 + b] = pixel(r, b) & 0xff;
  });
  return out;
}

/** A fresh temporary folder, removed by the returned disposer. */
export async function tempDir(): Promise<{ dir: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "data_test_" });
  return { dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}
