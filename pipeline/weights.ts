/**
 * Weights in and out: `--save-init FILE` writes run A's initial weights, `--init-from FILE`
 * starts every run from given weights (for instance exported from PyTorch), both as
 * `.safetensors` in PyTorch's layout (stages/checkpoint.ts).
 *
 * @module
 */

import type { ModelLayout } from "../core/graph.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  type SafeTensor,
  SafetensorsError,
} from "../core/safetensors.ts";
import {
  CheckpointError,
  DF64_LO,
  exportTensor,
  importTensor,
  torchShape,
} from "../stages/checkpoint.ts";
import { writeFileAtomic } from "../stages/files.ts";

/** The `format` metadata value of a `--save-init` file. */
export const WEIGHTS_FORMAT = "wd-explr-weights/1";

/** PyTorch buffers of a state_dict that are not initial weights (ignored by --init-from). */
const BUFFERS = /\.(running_mean|running_var|num_batches_tracked)$/;

/** Writes run A's weights `params` (the trainer's flat vector) as `A/<module>.weight`, .... */
export async function saveWeights(
  path: string,
  layout: ModelLayout,
  params: Float32Array,
): Promise<void> {
  const tensors = new Map<string, SafeTensor>();
  for (const t of layout.tensors) tensors.set(`A/${t.name}`, exportTensor(layout, t, params));
  await writeFileAtomic(
    path,
    encodeSafetensors(tensors, { format: WEIGHTS_FORMAT, model: layout.description }),
  );
}

/**
 * Run A's initial weights for `layout` from a `.safetensors` file: every parameter as
 * `A/<name>` (as --save-init and checkpoints write it) or `<name>` (a PyTorch state_dict), in
 * PyTorch's shapes, F32 or F64 (rounded to float32: every run starts from float32 weights, in
 * every precision); BatchNorm buffers, momentum and df64 lo parts are ignored. Missing,
 * unknown or misshapen tensors are one error line naming the file.
 */
export async function loadWeights(path: string, layout: ModelLayout): Promise<Float32Array> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new CheckpointError(`--init-from: cannot read ${path}: ${(e as Error).message}`);
  }
  let tensors: Map<string, SafeTensor>;
  try {
    tensors = decodeSafetensors(bytes, path).tensors;
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError(e.message);
    throw e;
  }
  const prefix = [...tensors.keys()].some((k) => k.startsWith("A/")) ? "A/" : "";
  const params = new Float32Array(layout.size), used = new Set<string>();
  for (const t of layout.tensors) {
    const name = prefix + t.name, shape = torchShape(layout, t), found = tensors.get(name);
    if (!found) throw new CheckpointError(`${path}: tensor ${name} is missing`);
    if (found.shape.join(",") !== shape.join(",")) {
      throw new CheckpointError(
        `${path}: tensor ${name} has shape [${found.shape}], the model's is [${shape}]`,
      );
    }
    if (found.dtype !== "F32" && found.dtype !== "F64") {
      throw new CheckpointError(`${path}: tensor ${name} is ${found.dtype}, expected F32 or F64`);
    }
    const values = Float32Array.from(found.data);
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new CheckpointError(
        `${path}: tensor ${name} element ${bad} is ${values[bad]}${
          Number.isFinite(Number(found.data[bad])) ? ` (${found.data[bad]} overflows float32)` : ""
        }: the weights must be finite`,
      );
    }
    importTensor(layout, t, values, params);
    used.add(name);
  }
  const extra = [...tensors.keys()].find((k) =>
    !used.has(k) && k.startsWith(prefix) && !BUFFERS.test(k) && !k.includes(".momentum") &&
    !k.endsWith(DF64_LO)
  );
  if (extra !== undefined) {
    throw new CheckpointError(
      `${path}: tensor ${extra} is not a parameter of ${layout.description}`,
    );
  }
  return params;
}
