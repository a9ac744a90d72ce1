/**
 * Bad files for the bad-inputs table, made in memory: CSV text, IDX and CIFAR-10 bytes, gzip
 * (whole or cut), and edited copies of a real checkpoint or weights file. Every builder is
 * deterministic, so a case fails the same way on every run.
 *
 * @module
 */

import { decodeSafetensors, encodeSafetensors, type SafeTensor } from "../../core/safetensors.ts";

const encoder = new TextEncoder();

/** A file's content: text (written as UTF-8) or bytes. */
export type Content = string | Uint8Array;

/** `content` as bytes. */
export function bytesOf(content: Content): Uint8Array {
  return typeof content === "string" ? encoder.encode(content) : content;
}

/** Gzips `content` in memory. */
export async function gzip(content: Content): Promise<Uint8Array> {
  const stream = new Blob([bytesOf(content) as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A value in [0, 1) from `i` (a fixed, irregular sequence: no PRNG state to share). */
function noise(i: number): number {
  const x = Math.sin(i * 12.9898) * 43758.5453;
  return x - Math.floor(x);
}

/**
 * A small valid CSV dataset: a `label` column first (labels cycle through `classes`) and
 * `features` numeric columns, `rows` data rows, a header unless `header` is false.
 */
export function csvText(
  { rows = 40, classes = 2, features = 3, header = true } = {},
): string {
  const lines = header ? [["label", ...Array.from({ length: features }, (_, j) => `f${j}`)]] : [];
  for (let i = 0; i < rows; i++) {
    const cells = Array.from({ length: features }, (_, j) => noise(i * 31 + j).toFixed(3));
    lines.push([String(i % classes), ...cells]);
  }
  return lines.map((l) => l.join(",")).join("\n") + "\n";
}

/** {@link csvText} with its 1-based line `line` replaced by `text`. */
export function csvWithLine(line: number, text: string, options = {}): string {
  const lines = csvText(options).split("\n");
  lines[line - 1] = text;
  return lines.join("\n");
}

/** A big-endian 32-bit word. */
function u32(v: number): number[] {
  return [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
}

/** An IDX images file: `n` images of `size`×`size` bytes (magic 0x803 unless given). */
export function idxImages(n: number, size = 4, magic = 0x803): Uint8Array {
  const body = Array.from({ length: n * size * size }, (_, i) => (i * 37) & 255);
  return new Uint8Array([...u32(magic), ...u32(n), ...u32(size), ...u32(size), ...body]);
}

/** An IDX labels file holding `labels` (magic 0x801 unless given). */
export function idxLabels(labels: number[], magic = 0x801): Uint8Array {
  return new Uint8Array([...u32(magic), ...u32(labels.length), ...labels]);
}

/** `n` labels cycling through 0..classes-1. */
export function cycle(n: number, classes = 2): number[] {
  return Array.from({ length: n }, (_, i) => i % classes);
}

/** CIFAR-10 binary records, one per label: the label byte and 3,072 pixel bytes. */
export function cifarRecords(labels: number[]): Uint8Array {
  const out = new Uint8Array(labels.length * 3073);
  labels.forEach((l, r) => {
    out[r * 3073] = l;
    for (let i = 1; i < 3073; i++) out[r * 3073 + i] = (r * 7 + i) & 255;
  });
  return out;
}

/** Bytes that are not UTF-8 (a Latin-1 "é" and stray continuation and 0xff bytes). */
export const NOT_UTF8 = new Uint8Array([0xe9, 0x80, 0xff, 0xfe, 0x41, 0x0a]);

/**
 * A copy of the safetensors `bytes` decoded, changed by `edit` (tensors and metadata, in place)
 * and encoded again by the tool's own codec.
 */
export function editSafetensors(
  bytes: Uint8Array,
  edit: (tensors: Map<string, SafeTensor>, metadata: Record<string, string>) => void,
): Uint8Array {
  const { tensors, metadata } = decodeSafetensors(bytes, "fixture");
  edit(tensors, metadata);
  return encodeSafetensors(tensors, metadata);
}

/** A copy of the safetensors `bytes` whose JSON header text is replaced by `edit(text)`. */
export function editHeader(bytes: Uint8Array, edit: (header: string) => string): Uint8Array {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const header = encoder.encode(edit(new TextDecoder().decode(bytes.subarray(8, 8 + n))));
  const out = new Uint8Array(8 + header.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  out.set(bytes.subarray(8 + n), 8 + header.length);
  return out;
}

/** A tensor's data as float64 (an F32 file's tensor as F64: same shape, another dtype). */
export function asF64(t: SafeTensor): SafeTensor {
  return { dtype: "F64", shape: t.shape, data: Float64Array.from(t.data as Float32Array) };
}
