/**
 * The output sink's encodings of values that are not plain numbers: an unmeasured cell (empty in
 * CSV, an absent key in JSON Lines) and a measured NaN or ±Infinity (`NaN`/`Infinity` in CSV,
 * `null` in JSON Lines, which has no NaN).
 */

import { outputSink } from "./sink.ts";
import type { OutputRow } from "./monitor.ts";
import { assertEquals } from "./data/test_fixtures.ts";

const COLUMNS = ["step", "epoch", "A.loss", "A.acc", "A.lr", "A.wnorm", "A.eval_acc"];

/** Writes `rows` through the sink in `format` and returns the text. */
async function written(format: "csv" | "jsonl", rows: OutputRow[]): Promise<string> {
  let text = "";
  const decoder = new TextDecoder();
  const out = new WritableStream<Uint8Array>({ write: (c) => void (text += decoder.decode(c)) });
  const writer = outputSink(out, format, COLUMNS).getWriter();
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
