/**
 * The IDX format of MNIST and Fashion-MNIST: an images file (`*-images-idx3-ubyte`) and a labels
 * file (`*-labels-idx1-ubyte`), raw or gzipped.
 *
 * Layout: a big-endian 32-bit magic `0x000008DD` (two zero bytes, element type 0x08 = unsigned
 * byte, DD = number of dimensions), one big-endian 32-bit size per dimension, then the elements
 * row-major. Images have 3 dimensions (count, rows, columns), labels 1 (count).
 *
 * @module
 */

import { ByteReader, openDataStream } from "./byte_stream.ts";
import { DataError } from "./errors.ts";
import type { Dataset } from "./types.ts";

/** Magic of an IDX images file: unsigned bytes, 3 dimensions. */
export const IDX_IMAGES_MAGIC = 0x00000803;
/** Magic of an IDX labels file: unsigned bytes, 1 dimension. */
export const IDX_LABELS_MAGIC = 0x00000801;
/** MNIST and Fashion-MNIST both have ten classes. */
export const IDX_CLASSES = 10;

/** The content of one IDX file: its dimensions and its bytes. */
export interface IdxArray {
  /** Sizes from the header; `dims[0]` is the number of records. */
  dims: number[];
  /** All elements, row-major. */
  data: Uint8Array;
}

/**
 * Reads an IDX file whose magic must be `magic`. Errors: wrong magic, an empty file (0 records),
 * a truncated header or body ("truncated: expected N bytes, got M") and bytes beyond what the
 * header declares.
 */
export async function readIdx(path: string, magic: number): Promise<IdxArray> {
  const reader = new ByteReader(path, await openDataStream(path));
  try {
    return await readIdxFrom(reader, path, magic);
  } finally {
    await reader.cancel();
  }
}

async function readIdxFrom(reader: ByteReader, path: string, magic: number): Promise<IdxArray> {
  const kind = magic === IDX_IMAGES_MAGIC ? "images" : "labels";
  const rank = magic & 0xff;
  const headerBytes = 4 + 4 * rank;
  const header = new Uint8Array(headerBytes);
  const atHeader = () => "header";
  const gotMagic = await reader.readInto(header.subarray(0, 4), atHeader);
  if (gotMagic < 4) {
    throw new DataError(
      path,
      "header",
      `truncated: expected ${headerBytes} bytes, got ${gotMagic}`,
    );
  }
  const view = new DataView(header.buffer);
  const found = view.getUint32(0);
  if (found !== magic) {
    throw new DataError(
      path,
      "header",
      `wrong magic 0x${hex8(found)}, expected 0x${hex8(magic)} (IDX unsigned-byte ${kind})`,
    );
  }
  const gotDims = await reader.readInto(header.subarray(4), atHeader);
  if (gotDims < headerBytes - 4) {
    throw new DataError(
      path,
      "header",
      `truncated: expected ${headerBytes} bytes, got ${4 + gotDims}`,
    );
  }
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i));
  if (dims[0] === 0) throw new DataError(path, "header", `empty dataset: 0 ${kind}`);
  const recordBytes = dims.slice(1).reduce((a, b) => a * b, 1);
  if (recordBytes === 0) throw new DataError(path, "header", `empty records: ${dims.join("×")}`);
  const bodyBytes = dims[0] * recordBytes;
  // A typed array cannot be this large; say so instead of failing inside the allocation.
  if (bodyBytes > 2 ** 32) {
    throw new DataError(path, "header", `declares ${dims.join("×")} bytes, too large to load`);
  }
  const recordAt = (offset: number) =>
    `record ${Math.floor(Math.max(0, offset - headerBytes) / recordBytes)}`;
  const data = new Uint8Array(bodyBytes);
  const got = await reader.readInto(data, recordAt);
  if (got < bodyBytes) {
    throw new DataError(
      path,
      recordAt(headerBytes + got),
      `truncated: expected ${headerBytes + bodyBytes} bytes, got ${headerBytes + got}`,
    );
  }
  const extra = await reader.drain(recordAt);
  if (extra > 0) {
    throw new DataError(
      path,
      `record ${dims[0]}`,
      `${extra} bytes after the ${dims[0]} ${kind} the header declares (count mismatch)`,
    );
  }
  return { dims, data };
}

/**
 * Loads an images file and its labels file as one dataset (`dim` = rows × columns, 1 channel,
 * 10 classes, `image` = rows × columns × 1 from the header; the bytes are already HWC). Errors: any {@link readIdx} error, images/labels count mismatch, a label ≥ 10.
 */
export async function loadIdx(images: string, labels: string, name: string): Promise<Dataset> {
  const [img, lab] = await Promise.all([
    readIdx(images, IDX_IMAGES_MAGIC),
    readIdx(labels, IDX_LABELS_MAGIC),
  ]);
  const n = img.dims[0];
  if (lab.dims[0] !== n) {
    throw new DataError(
      labels,
      "header",
      `count mismatch: ${lab.dims[0]} labels but ${n} images in ${images}`,
    );
  }
  const y = new Int32Array(n);
  let largest = 0;
  for (let i = 0; i < n; i++) {
    if (lab.data[i] >= IDX_CLASSES) {
      throw new DataError(
        labels,
        `record ${i}`,
        `label ${lab.data[i]} out of range 0..${IDX_CLASSES - 1}`,
      );
    }
    y[i] = lab.data[i];
    if (y[i] > y[largest]) largest = i;
  }
  return {
    name,
    x: new Float32Array(img.data),
    y,
    n,
    dim: img.dims[1] * img.dims[2],
    classes: IDX_CLASSES,
    channels: 1,
    image: { height: img.dims[1], width: img.dims[2], channels: 1 },
    source: images,
    largestLabelAt: { file: labels, position: `record ${largest}` },
  };
}

function hex8(v: number): string {
  return v.toString(16).padStart(8, "0");
}
