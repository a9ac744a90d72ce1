/**
 * A small, strict codec for the `.safetensors` format (https://github.com/huggingface/safetensors):
 * an 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON header, then the raw byte
 * buffer. The header maps each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}`
 * (offsets relative to the buffer, end exclusive) plus an optional `"__metadata__"` object of
 * strings. Tensors are little-endian, row-major; the header is space-padded so the buffer starts
 * 8-byte aligned. Decoding follows the reference implementation: the tensors must cover the
 * buffer exactly, with no overlaps and no holes. A little-endian host is assumed (checked).
 *
 * @module
 */

/** The element types this codec reads and writes. */
export type Dtype = "F32" | "F64" | "I32" | "U32" | "I64" | "U8";

/** The typed array that holds the elements of each {@link Dtype}. */
export interface DtypeArrays {
  F32: Float32Array;
  F64: Float64Array;
  I32: Int32Array;
  U32: Uint32Array;
  I64: BigInt64Array;
  U8: Uint8Array;
}

/** One tensor: its dtype, its row-major shape (`[]` for a scalar) and its elements. */
export type SafeTensor = {
  [D in Dtype]: { dtype: D; shape: number[]; data: DtypeArrays[D] };
}[Dtype];

/** What {@link decodeSafetensors} returns: tensors in data order, and the metadata. */
export interface DecodedSafetensors {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

/** A malformed file or an invalid tensor; the message is one line starting with the source. */
export class SafetensorsError extends Error {
  /** Builds the error `${source}: ${problem}`, with any line breaks turned into spaces. */
  constructor(source: string, problem: string) {
    super(`${source}: ${problem}`.replace(/[\r\n\u2028\u2029]+/g, " "));
    this.name = "SafetensorsError";
  }
}

interface DtypeInfo {
  size: number;
  ctor: { new (buffer: ArrayBuffer): DtypeArrays[Dtype] };
}

const DTYPES: Readonly<Record<Dtype, DtypeInfo>> = {
  F32: { size: 4, ctor: Float32Array },
  F64: { size: 8, ctor: Float64Array },
  I32: { size: 4, ctor: Int32Array },
  U32: { size: 4, ctor: Uint32Array },
  I64: { size: 8, ctor: BigInt64Array },
  U8: { size: 1, ctor: Uint8Array },
};

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const METADATA = "__metadata__";
const show = (v: unknown): string => {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v); // a bigint or a cycle, only from a caller's bad input to the encoder
  }
};
const isDtype = (v: unknown): v is Dtype => typeof v === "string" && Object.hasOwn(DTYPES, v);
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const product = (shape: number[]): bigint => shape.reduce((p, d) => p * BigInt(d), 1n);

/**
 * Encodes `tensors` (written in insertion order, data contiguous) and `metadata` (omitted from
 * the header when empty). Throws a {@link SafetensorsError} (source "safetensors") for an empty
 * or reserved name, an unknown dtype, a data array of the wrong type, or a bad shape/length.
 */
export function encodeSafetensors(
  tensors: Map<string, SafeTensor>,
  metadata: Record<string, string>,
): Uint8Array {
  if (!LITTLE_ENDIAN_HOST) throw new SafetensorsError("safetensors", "big-endian host");
  const fail = (problem: string): never => {
    throw new SafetensorsError("safetensors", problem);
  };
  const entries: string[] = [];
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") fail(`${METADATA} value for ${show(k)} is not a string`);
    }
    entries.push(`${show(METADATA)}:${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === "" || name === METADATA) fail(`invalid tensor name ${show(name)}`);
    if (!isDtype(t.dtype)) return fail(`tensor ${show(name)}: unknown dtype ${show(t.dtype)}`);
    if (!(t.data instanceof DTYPES[t.dtype].ctor)) {
      fail(`tensor ${show(name)}: data is not the typed array for ${t.dtype}`);
    }
    if (!Array.isArray(t.shape) || !t.shape.every(isCount)) {
      fail(`tensor ${show(name)}: shape ${show(t.shape)} is not non-negative integers`);
    }
    if (product(t.shape) !== BigInt(t.data.length)) {
      fail(`tensor ${show(name)}: ${t.data.length} elements do not match shape ${show(t.shape)}`);
    }
    const end = offset + t.data.byteLength;
    const info = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, end] };
    entries.push(`${show(name)}:${JSON.stringify(info)}`);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${entries.join(",")}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/** What a file that is not safetensors looks like, from its first bytes. */
function kindOf(bytes: Uint8Array): string {
  const starts = (...magic: number[]) => magic.every((b, i) => bytes[i] === b);
  if (bytes.length < 9) return `${bytes.length} bytes, too short for a header`;
  if (starts(0x50, 0x4b, 0x03, 0x04)) {
    return "a zip archive: a PyTorch .pt/.pth file? save it with safetensors.torch.save_file";
  }
  if (starts(0x1f, 0x8b)) return "gzip-compressed data";
  if (starts(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59)) return "a NumPy .npy file";
  if (starts(0x80) && bytes[1] >= 2 && bytes[1] <= 5) return "a Python pickle";
  return "no JSON header after the 8-byte length";
}

/**
 * Decodes a `.safetensors` file. The tensors come back ordered by their data offsets, each in a
 * fresh typed array (never aliasing `bytes`). Throws a {@link SafetensorsError} whose message
 * starts with `${source}: ` for any malformed header, bad tensor entry, overlap or hole.
 */
export function decodeSafetensors(bytes: Uint8Array, source: string): DecodedSafetensors {
  const fail = (problem: string): never => {
    throw new SafetensorsError(source, problem);
  };
  if (!LITTLE_ENDIAN_HOST) fail("big-endian host");
  // A safetensors file starts with its header's length and the header's "{".
  if (bytes.length < 9 || bytes[8] !== 0x7b) fail(`not a safetensors file (${kindOf(bytes)})`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) {
    fail(
      `truncated: header length ${n} runs past the end of the file (${
        bytes.length - 8
      } bytes left)`,
    );
  }
  const dataStart = 8 + Number(n);
  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, dataStart));
  } catch {
    fail("header is not valid UTF-8");
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(header)) return fail("header is not a JSON object");
  const dataLength = bytes.length - dataStart;
  let metadata: Record<string, string> = {};
  const found: { name: string; dtype: Dtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === METADATA) {
      if (!isObject(entry)) fail(`${METADATA} is not an object`);
      for (const [k, v] of Object.entries(entry as object)) {
        if (typeof v !== "string") fail(`${METADATA} value for ${show(k)} is not a string`);
      }
      metadata = Object.fromEntries(Object.entries(entry as Record<string, string>));
      continue;
    }
    const what = `tensor ${show(name)}`;
    if (name === "") fail("empty tensor name");
    if (!isObject(entry)) return fail(`${what}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (!isDtype(dtype)) return fail(`${what}: unknown dtype ${show(dtype)}`);
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      return fail(`${what}: shape ${show(shape)} is not an array of non-negative integers`);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) ||
      offsets[0] > offsets[1]
    ) {
      return fail(`${what}: data_offsets ${show(offsets)} are not two integers begin <= end`);
    }
    const [begin, end] = offsets as [number, number];
    const expected = product(shape) * BigInt(DTYPES[dtype].size);
    if (BigInt(end - begin) !== expected) {
      fail(`${what}: byte size ${end - begin} != shape ${show(shape)} × ${dtype} = ${expected}`);
    }
    if (end > dataLength) {
      fail(`${what}: data_offsets [${begin}, ${end}] past the end of the data (${dataLength})`);
    }
    found.push({ name, dtype, shape, begin, end });
  }
  found.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (let i = 0; i < found.length; i++) {
    const { name, begin } = found[i];
    if (begin < covered) {
      const prev = found[i - 1];
      fail(
        `tensor ${show(name)} [${begin}, ${found[i].end}] overlaps ` +
          `tensor ${show(prev.name)} [${prev.begin}, ${prev.end}]`,
      );
    }
    if (begin > covered) fail(`data bytes [${covered}, ${begin}) not covered by any tensor`);
    covered = found[i].end;
  }
  if (covered < dataLength) {
    fail(`data bytes [${covered}, ${dataLength}) not covered by any tensor`);
  }
  const tensors = new Map<string, SafeTensor>();
  for (const { name, dtype, shape, begin, end } of found) {
    const copy = bytes.slice(dataStart + begin, dataStart + end).buffer;
    tensors.set(name, { dtype, shape, data: new DTYPES[dtype].ctor(copy) } as SafeTensor);
  }
  return { tensors, metadata };
}
