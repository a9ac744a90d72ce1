/**
 * The per-step metrics record, declared once: a table of named fields, each written by one term
 * of one kernel. Offsets, the kernels' output views and the monitor's reads all come from this
 * table; nothing reads the record by a number written by hand.
 *
 * @module
 */

import { LOSS_TERMS } from "../shaders/softmax_xent.ts";
import { PROBE_TERMS } from "../shaders/probe_distance.ts";
import { OPTIMIZER_TERMS } from "../shaders/sgd.ts";
import type { Reals } from "../shaders/precision.ts";

/** The kernels that write the record, each one group of consecutive fields per run. */
export const RECORD_WRITERS = [
  "loss",
  "batch distances",
  "probe distances",
  "eval distances",
  "optimizer",
  "optimizer (per tensor)",
] as const;

/** One of {@link RECORD_WRITERS}. */
export type RecordWriter = typeof RECORD_WRITERS[number];

/** One named field of a run's record. */
export interface RecordField {
  /** The name the monitor reads it by, e.g. `loss`, `probe.maxprob`, `layer_norm2_before`. */
  name: string;
  /** First real of the field in a run's record. */
  offset: number;
  /** Reals (1, or the number of S tensors for a per-tensor field). */
  size: number;
  writer: RecordWriter;
  /** The writer's term that produces it (its output's name in the kernel). */
  term: string;
}

/** The group each writer fills: its terms, in its output order, and the field name prefix. */
function writerTerms(writer: RecordWriter): { terms: readonly string[]; prefix: string } {
  switch (writer) {
    case "loss":
      return { terms: LOSS_TERMS, prefix: "" };
    case "batch distances": // the training batch's accuracy is the loss kernel's `correct`
      return { terms: PROBE_TERMS.filter((t) => t !== "correct"), prefix: "batch." };
    case "probe distances":
      return { terms: PROBE_TERMS, prefix: "probe." };
    case "eval distances":
      return { terms: PROBE_TERMS, prefix: "eval." };
    case "optimizer":
      return { terms: OPTIMIZER_TERMS, prefix: "" };
    case "optimizer (per tensor)":
      return { terms: ["norm2_before"], prefix: "layer_" };
  }
}

/** A run's record: its fields, laid out from the table, and reads by name. */
export class MetricsRecord {
  /** Reals per run (a multiple of 4). */
  readonly words: number;
  readonly fields: readonly RecordField[];
  readonly #byName: Map<string, RecordField>;

  /** The record of a model with `sTensors` tensors in group S. */
  constructor(readonly sTensors: number) {
    const fields: RecordField[] = [];
    let offset = 0;
    for (const writer of RECORD_WRITERS) {
      const { terms, prefix } = writerTerms(writer);
      const size = writer === "optimizer (per tensor)" ? sTensors : 1;
      for (const term of terms) {
        fields.push({ name: `${prefix}${term}`, offset, size, writer, term });
        offset += size;
      }
    }
    this.words = Math.ceil(offset / 4) * 4;
    this.fields = fields;
    this.#byName = new Map(fields.map((f) => [f.name, f]));
  }

  /** The field called `name`. */
  field(name: string): RecordField {
    const f = this.#byName.get(name);
    if (!f) throw new Error(`metrics record: no field ${name}`);
    return f;
  }

  /** The offset of `writer`'s first field: where its kernel's output view starts. */
  start(writer: RecordWriter): number {
    const f = this.fields.find((f) => f.writer === writer);
    if (!f) throw new Error(`metrics record: no field written by ${writer}`);
    return f.offset;
  }

  /** A reader of run records read back as `metrics` (runs × {@link words} reals). */
  reader(metrics: Reals): RecordReader {
    return (run, name, index = 0) => metrics[run * this.words + this.field(name).offset + index];
  }
}

/** Reads field `name` (element `index` of a per-tensor field) of run `run`. */
export type RecordReader = (run: number, name: string, index?: number) => number;
