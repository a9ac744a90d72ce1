/**
 * The CIFAR-10 binary format (`data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`), raw or
 * gzipped: records of 1 label byte (0..9) and 3,072 pixel bytes, the 32×32 red plane, then green,
 * then blue. The format has no header and no magic number, so it is recognised by file name.
 *
 * The loaded dataset is channels last like every image dataset (see `Dataset`): each record is
 * transposed once, at load, from the file's channel-major CHW to HWC, so pixel (h, w) of channel c
 * (file byte `c * 1024 + h * 32 + w` of the image) is feature `(h * 32 + w) * 3 + c`.
 *
 * @module
 */

import { dirname } from "node:path";
import { ByteReader, openDataStream } from "./byte_stream.ts";
import { DataError } from "./errors.ts";
import type { Dataset, ImageShape } from "./types.ts";

/** Pixel bytes per CIFAR-10 image: 3 channels × 32 × 32. */
export const CIFAR_IMAGE_BYTES = 3072;
/** Bytes per CIFAR-10 record: the label byte and the image. */
export const CIFAR_RECORD_BYTES = 1 + CIFAR_IMAGE_BYTES;
/** CIFAR-10 has ten classes. */
export const CIFAR_CLASSES = 10;
/** The shape of a CIFAR-10 image: 32 × 32 pixels, 3 channels. */
export const CIFAR_IMAGE: Readonly<ImageShape> = Object.freeze({
  height: 32,
  width: 32,
  channels: 3,
});

/** Records read per block: big enough to amortise the stream reads, small enough to not matter. */
const BLOCK_RECORDS = 1024;

/**
 * Reads one CIFAR-10 batch file into whole records. Errors: empty file, a last record shorter
 * than 3,073 bytes (truncated), corrupt gzip data.
 */
export async function readCifarRecords(path: string): Promise<Uint8Array> {
  const reader = new ByteReader(path, await openDataStream(path));
  const recordAt = (offset: number) => `record ${Math.floor(offset / CIFAR_RECORD_BYTES)}`;
  const blocks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const block = new Uint8Array(BLOCK_RECORDS * CIFAR_RECORD_BYTES);
      const got = await reader.readInto(block, recordAt);
      blocks.push(block.subarray(0, got));
      total += got;
      if (got < block.length) break;
    }
  } finally {
    await reader.cancel();
  }
  if (total === 0) throw new DataError(path, "record 0", "empty dataset: the file is empty");
  const partial = total % CIFAR_RECORD_BYTES;
  if (partial !== 0) {
    throw new DataError(
      path,
      recordAt(total),
      `truncated: expected ${total - partial + CIFAR_RECORD_BYTES} bytes, got ${total}`,
    );
  }
  const records = new Uint8Array(total);
  let at = 0;
  for (const b of blocks) {
    records.set(b, at);
    at += b.length;
  }
  return records;
}

/**
 * Loads CIFAR-10 batch files, concatenated in the given order, as one dataset (`dim` 3,072,
 * 3 channels, 10 classes, `image` 32 × 32 × 3, stored HWC); its `source` is the file, or the
 * folder of several. Errors: any
 * {@link readCifarRecords} error, a label ≥ 10.
 */
export async function loadCifar(files: string[], name: string): Promise<Dataset> {
  const parts = await Promise.all(files.map(readCifarRecords));
  const n = parts.reduce((sum, p) => sum + p.length / CIFAR_RECORD_BYTES, 0);
  const x = new Float32Array(n * CIFAR_IMAGE_BYTES);
  const y = new Int32Array(n);
  let row = 0;
  let largest = { label: -1, file: files[0], position: "record 0" };
  parts.forEach((records, f) => {
    for (let r = 0; r * CIFAR_RECORD_BYTES < records.length; r++, row++) {
      const at = r * CIFAR_RECORD_BYTES;
      const label = records[at];
      if (label >= CIFAR_CLASSES) {
        throw new DataError(
          files[f],
          `record ${r}`,
          `label ${label} out of range 0..${CIFAR_CLASSES - 1}`,
        );
      }
      y[row] = label;
      if (label > largest.label) largest = { label, file: files[f], position: `record ${r}` };
      chwToHwc(records.subarray(at + 1, at + CIFAR_RECORD_BYTES), x, row * CIFAR_IMAGE_BYTES);
    }
  });
  const source = files.length === 1 ? files[0] : dirname(files[0]);
  return {
    name,
    x,
    y,
    n,
    dim: CIFAR_IMAGE_BYTES,
    classes: CIFAR_CLASSES,
    channels: CIFAR_IMAGE.channels,
    image: { ...CIFAR_IMAGE },
    source,
    largestLabelAt: { file: largest.file, position: largest.position },
  };
}

/** Writes one channel-major CIFAR-10 image `chw` into `out` at `offset` in HWC order. */
function chwToHwc(chw: Uint8Array, out: Float32Array, offset: number): void {
  const { channels } = CIFAR_IMAGE;
  const plane = CIFAR_IMAGE.height * CIFAR_IMAGE.width;
  for (let c = 0; c < channels; c++) {
    for (let p = 0, o = offset + c; p < plane; p++, o += channels) out[o] = chw[c * plane + p];
  }
}
