import { LOSS_TERMS } from "../shaders/softmax_xent.ts";
import { PROBE_TERMS } from "../shaders/probe_distance.ts";
import { OPTIMIZER_TERMS } from "../shaders/sgd.ts";
import { RunPlan } from "../core/runs.ts";
import { MetricsRecord, RECORD_WRITERS, type RecordReader } from "./metrics_record.ts";
import { deriveRow, outputColumns, type RowOptions } from "./columns.ts";
import { trainerSpec } from "./test_trainers.ts";

/** What each writer's kernel declares it writes, in its output order. */
const KERNEL_OUTPUTS: Record<string, readonly string[]> = {
  "loss": LOSS_TERMS,
  "batch distances": PROBE_TERMS.filter((t) => t !== "correct"),
  "probe distances": PROBE_TERMS,
  "eval distances": PROBE_TERMS,
  "optimizer": OPTIMIZER_TERMS,
  "optimizer (per tensor)": ["norm2_before"],
};

Deno.test("metrics record: every field is written by exactly one kernel term, none overlap", () => {
  for (const layers of [1, 3, 19]) {
    const record = new MetricsRecord(layers);
    const seen = new Set<string>();
    for (const writer of RECORD_WRITERS) {
      const fields = record.fields.filter((f) => f.writer === writer);
      const terms = fields.map((f) => f.term);
      if (terms.join() !== KERNEL_OUTPUTS[writer].join()) {
        throw new Error(`${writer}: fields ${terms}, the kernel writes ${KERNEL_OUTPUTS[writer]}`);
      }
      // A kernel writes its terms at consecutive reals from the group's start.
      let at = record.start(writer);
      for (const f of fields) {
        if (f.offset !== at) throw new Error(`${f.name} at ${f.offset}, expected ${at}`);
        at += f.size;
        const key = `${f.writer}/${f.term}`;
        if (seen.has(key) || seen.has(f.name)) throw new Error(`${key} (${f.name}) twice`);
        seen.add(key).add(f.name);
      }
    }
    const words = new Uint8Array(record.words);
    for (const f of record.fields) {
      for (let i = f.offset; i < f.offset + f.size; i++) {
        if (words[i]++) throw new Error(`${f.name} overlaps another field at ${i}`);
      }
    }
    if (record.words % 4 !== 0) throw new Error(`${record.words} reals per run`);
  }
});

/** A record that notes every field the monitor reads. */
class ReadSpy extends MetricsRecord {
  readonly read = new Set<string>();
  override reader(metrics: Float64Array | Float32Array): RecordReader {
    const inner = super.reader(metrics);
    return (run, name, index) => {
      this.read.add(name);
      return inner(run, name, index);
    };
  }
}

Deno.test("metrics record: the monitor reads every field, and derives every column", () => {
  const runs = ["A", "B", "A1"] as const, layers = 3;
  const record = new ReadSpy(layers);
  const plan = new RunPlan(trainerSpec([...runs], 10));
  const metrics = Float64Array.from({ length: runs.length * record.words }, (_, i) => 1 + i);
  const opts: RowOptions = {
    runs: [...runs],
    record,
    sTensors: layers,
    probeRows: 64,
    perLayer: true,
  };
  const row = deriveRow({
    kind: "step",
    step: 0,
    epoch: 0,
    rows: 32,
    plan: plan.next(),
    metrics,
    probe: true,
    evalMode: true,
    rescales: [],
  }, opts);
  const unread = record.fields.map((f) => f.name).filter((n) => !record.read.has(n));
  if (unread.length > 0) throw new Error(`fields the monitor never reads: ${unread}`);
  const missing = outputColumns(opts).filter((c) => !["step", "epoch", "event"].includes(c))
    .filter((c) => !(c in row));
  if (missing.length > 0) throw new Error(`columns without a value: ${missing}`);
});
