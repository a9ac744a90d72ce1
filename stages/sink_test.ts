/**
 * The output sink's encodings of values that are not plain numbers: an unmeasured cell (empty in
 * CSV, an absent key in JSON Lines) and a measured NaN or ±Infinity (`NaN`/`Infinity` in CSV,
 * `null` in JSON Lines, which has no NaN).
 */

import { createHash } from "node:crypto";
import { OutputError, outputSink, type RowsWritten } from "./sink.ts";
import type { OutputRow } from "./monitor.ts";
import { RunControl } from "./step.ts";
import { assertEquals } from "./data/test_fixtures.ts";

const COLUMNS = ["step", "epoch", "A.loss", "A.acc", "A.lr", "A.wnorm", "A.eval_acc"];

/** Writes `rows` through the sink in `format` and returns the text. */
async function written(format: "csv" | "jsonl", rows: OutputRow[]): Promise<string> {
  let text = "";
  const decoder = new TextDecoder();
  const out = new WritableStream<Uint8Array>({ write: (c) => void (text += decoder.decode(c)) });
  const writer = outputSink(out, { format, columns: COLUMNS }).getWriter();
  for (const row of rows) await writer.write(row);
  await writer.close();
  return text;
}

const row: OutputRow = {
  kind: "step",
  values: {
    step: 3,
    epoch: 0,
    "A.loss": NaN,
    "A.acc": 0.5,
    "A.lr": Infinity,
    "A.wnorm": -Infinity,
    "A.eval_acc": undefined, // not measured at this step
  },
};

Deno.test("sink CSV: NaN and infinities are written as such, an unmeasured cell is empty", async () => {
  const text = await written("csv", [row]);
  assertEquals(text, `${COLUMNS.join(",")}\n3,0,NaN,0.5,Infinity,-Infinity,\n`);
});

Deno.test("sink JSON Lines: NaN and infinities are null, an unmeasured value has no key", async () => {
  const text = await written("jsonl", [row]);
  assertEquals(text, '{"step":3,"epoch":0,"A.loss":null,"A.acc":0.5,"A.lr":null,"A.wnorm":null}\n');
  const parsed = JSON.parse(text);
  assertEquals(["A.loss" in parsed, "A.eval_acc" in parsed], [true, false], "keys");
});

/** A byte stream that takes `accepted` writes, then fails each with `error`. */
function failingAfter(accepted: number, error: Error) {
  const chunks: Uint8Array[] = [];
  const out = new WritableStream<Uint8Array>({
    write(c) {
      if (chunks.length === accepted) throw error;
      chunks.push(c.slice());
    },
  });
  return { out, chunks };
}

const stepRow = (step: number): OutputRow => ({ kind: "step", values: { step, epoch: 0 } });

Deno.test("sink: a closed reader stops the run, later rows are dropped, the record says what got through", async () => {
  const { out, chunks } = failingAfter(3, new Deno.errors.BrokenPipe("Broken pipe (os error 32)"));
  const control = new RunControl();
  let record: RowsWritten | undefined;
  const sink = outputSink(out, {
    format: "csv",
    columns: ["step", "epoch"],
    control,
    onClose: (r) => record = r,
  });
  const writer = sink.getWriter();
  for (const step of [0, 1, 2, 3]) await writer.write(stepRow(step)); // no error surfaces
  await writer.close();
  assertEquals(control.outputClosed && control.stopping, true, "the run is told to stop");
  const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  assertEquals(text, "step,epoch\n0,0\n1,0\n");
  const sha256 = createHash("sha256").update(text).digest("hex");
  assertEquals(record, { format: "csv", count: 2, first_step: 0, last_step: 1, sha256 });
});

Deno.test("sink: another write error (a full disk) is one line naming stdout", async () => {
  const { out } = failingAfter(1, new Error("No space left on device (os error 28)"));
  const writer = outputSink(out, { format: "jsonl", columns: ["step"] }).getWriter();
  let message = "";
  await writer.write(stepRow(0));
  await writer.write(stepRow(1)).catch((e) => message = e instanceof OutputError ? e.message : "");
  assertEquals(message, "stdout: cannot write the jsonl rows: No space left on device");
});
