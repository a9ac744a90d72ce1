/**
 * Reading the trainer's CSV and JSON Lines: rows, events, not-measured cells and non-finite
 * values; and each bad input as one error line naming the file, line and column.
 */

import { classifyColumn } from "./columns.ts";
import { ReportError } from "./errors.ts";
import { readRows } from "./input.ts";
import type { Row } from "./rows.ts";
import { readJsonFile } from "./summary_file.ts";
import { syntheticCsv } from "./test_fixtures.ts";

function assertEquals(a: unknown, b: unknown): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(`${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
  }
}

/** The rows of `text` (or bytes) written to a temporary file with extension `ext`. */
async function rowsOf(text: string | Uint8Array, ext = ".csv"): Promise<Row[]> {
  const path = await Deno.makeTempFile({ suffix: ext });
  try {
    await Deno.writeFile(path, typeof text === "string" ? new TextEncoder().encode(text) : text);
    const rows: Row[] = [];
    for await (const r of await readRows(path)) rows.push(r);
    return rows;
  } finally {
    await Deno.remove(path);
  }
}

async function assertRejects(
  text: string | Uint8Array,
  ext: string,
  ...fragments: string[]
): Promise<void> {
  try {
    await rowsOf(text, ext);
  } catch (e) {
    if (!(e instanceof ReportError)) throw e;
    for (const f of fragments) {
      if (!e.message.includes(f)) throw new Error(`"${e.message}" lacks "${f}"`);
    }
    if (e.message.includes("\n")) throw new Error(`not one line: ${e.message}`);
    return;
  }
  throw new Error(`accepted; expected ${fragments.join(", ")}`);
}

const HEADER = "step,epoch,A.loss,B.loss,A.lr,B.lr,B.dist_maxprob,B.batch_maxprob,event";

Deno.test("CSV: rows, empty cells not measured, NaN and Infinity measured, event rows", async () => {
  const rows = await rowsOf(
    [
      HEADER,
      "0,0,2.3,2.3,0.1,0.1,0,,",
      "1,0,NaN,-Infinity,0.1,0.1,,1e-7,",
      "2,0,,,,,,,rescale B x0.25",
      "",
    ]
      .join("\n"),
  );
  assertEquals(rows.length, 3);
  const [r0, r1, e] = rows;
  if (r0.kind !== "step" || r1.kind !== "step") throw new Error("step rows expected");
  assertEquals(r0.values["B.batch_maxprob"], undefined);
  assertEquals(r0.values["B.dist_maxprob"], 0);
  if (!Number.isNaN(r1.values["A.loss"]) || r1.values["B.loss"] !== -Infinity) {
    throw new Error(`non-finite cells: ${r1.values["A.loss"]}, ${r1.values["B.loss"]}`);
  }
  assertEquals(e, { kind: "event", step: 2, epoch: 0, event: "rescale", run: "B", factor: 0.25 });
});

Deno.test("JSON Lines: a missing key is not measured, null is NaN, event objects", async () => {
  const rows = await rowsOf(
    [
      `{"step":0,"epoch":0,"A.loss":2.3,"A.lr":0.1,"B.loss":null,"B.lr":0.1,"B.dist_maxprob":0}`,
      `{"step":3,"epoch":0,"event":"rescale","run":"B","factor":0.25}`,
      "",
      `{"step":3,"epoch":0,"A.loss":2.1,"A.lr":0.1,"B.loss":2.1,"B.lr":0.1}`,
    ].join("\r\n"),
    ".jsonl",
  );
  assertEquals(rows.map((r) => r.kind), ["step", "event", "step"]);
  const [r0, , r2] = rows;
  if (r0.kind !== "step" || r2.kind !== "step") throw new Error("step rows expected");
  if (!Number.isNaN(r0.values["B.loss"])) throw new Error("null is not NaN");
  assertEquals("B.dist_maxprob" in r2.values, false);
});

Deno.test("the format is sniffed when the extension says nothing; a BOM is fine", async () => {
  const jsonl = await rowsOf(`{"step":0,"epoch":0,"A.loss":1,"A.lr":0.1}\n`, ".txt");
  assertEquals(jsonl.length, 1);
  const csv = await rowsOf(`\uFEFFstep,epoch,A.loss,A.lr\n0,0,1,0.1\n`, ".out");
  assertEquals(csv.length, 1);
});

Deno.test("the synthetic fixture reads back whole", async () => {
  const text = [...syntheticCsv({ rows: 120, rescaleAt: 60 })].join("");
  const rows = await rowsOf(text);
  assertEquals(rows.filter((r) => r.kind === "step").length, 120);
  assertEquals(rows.filter((r) => r.kind === "event").length, 1);
});

Deno.test("bad CSV: one line naming the problem", async () => {
  await assertRejects("", ".csv", "empty file");
  await assertRejects("\n  \n", ".csv", "empty file");
  await assertRejects(HEADER + "\n", ".csv", "no data rows after the header");
  await assertRejects(
    "step,epoch,A.loss,A.lr,A.bogus\n",
    ".csv",
    "line 1",
    `unknown column "A.bogus"`,
  );
  await assertRejects("step,epoch,A.loss,A.lr,D.loss\n", ".csv", "run D is not one of");
  await assertRejects("step,epoch,A.loss,A.lr,A.dist_maxprob\n", ".csv", "run A is the reference");
  await assertRejects("step,epoch,A.loss,B.loss,B.lr\n0,0,1,1,1\n", ".csv", "missing column A.lr");
  await assertRejects("epoch,A.loss,A.lr\n", ".csv", "missing column step");
  await assertRejects("step,epoch,A.loss,A.lr,A.loss\n", ".csv", `"A.loss" appears twice`);
  await assertRejects(
    "step,epoch,A.loss,A.lr\n0,0,abc,0.1\n",
    ".csv",
    "line 2",
    "column A.loss",
    `not a number: "abc"`,
  );
  await assertRejects("step,epoch,A.loss,A.lr\n0,0,0x10,0.1\n", ".csv", `not a number: "0x10"`);
  await assertRejects("step,epoch,A.loss,A.lr\n0,0,1\n", ".csv", "line 2", "expected 4 cells");
  await assertRejects(
    "step,epoch,A.loss,A.lr\n5,0,1,1\n4,0,1,1\n",
    ".csv",
    "line 3",
    "out of order",
  );
  await assertRejects("step,epoch,A.loss,A.lr\n1.5,0,1,1\n", ".csv", "expected an integer");
  await assertRejects(`${HEADER}\n0,0,,,,,,,explode\n`, ".csv", "column event", "explode");
  await assertRejects(
    `${HEADER}\n0,0,,,,,,,rescale Q x2\n`,
    ".csv",
    `column event: run "Q" is not one of A, B, A1, A2, C`,
  );
  await assertRejects(`step,epoch,A.loss,A.lr\n0,0,"1,1\n`, ".csv", "not valid CSV");
});

Deno.test("an empty step or epoch cell is named empty; an empty metric cell is not measured", async () => {
  const head = "step,epoch,A.loss,A.lr\n0,0,2.3,0.1\n";
  await assertRejects(head + ",0,2.1,0.1\n", ".csv", "line 3: column step: empty cell");
  await assertRejects(head + "1,,2.1,0.1\n", ".csv", "line 3: column epoch: empty cell");
  // An event row carries its step too.
  await assertRejects(`${HEADER}\n,0,,,,,,,rescale B x0.25\n`, ".csv", "column step: empty cell");
  // A cell of spaces is no number either (not an empty cell).
  await assertRejects(head + " ,0,2.1,0.1\n", ".csv", `column step: not a number: " "`);
  const [, r1] = await rowsOf(head + "1,0,,\n");
  if (r1.kind !== "step" || r1.values["A.loss"] !== undefined || r1.values["A.lr"] !== undefined) {
    throw new Error(`empty metric cells: ${JSON.stringify(r1)}`);
  }
});

/** Bytes that are not UTF-8 (an invalid lead byte, a lone continuation byte). */
const NOT_UTF8 = new Uint8Array([0xe9, 0x80, 0xff, 0xfe, 0x41, 0x0a]);
const bytes = (...parts: (string | Uint8Array)[]) =>
  new Uint8Array(
    parts.flatMap((p) => [...(typeof p === "string" ? new TextEncoder().encode(p) : p)]),
  );

Deno.test("an input that is not UTF-8 is one line saying so, wherever the bytes are", async () => {
  const message = "not UTF-8 text (a binary file?)";
  for (const ext of [".csv", ".jsonl", ".out"]) await assertRejects(NOT_UTF8, ext, ext, message);
  // Past the first chunk the format was sniffed from, in a metric cell and in a JSON string.
  const good = [...syntheticCsv({ rows: 400 })].join("");
  if (good.length < 200_000) throw new Error("the good part fits in one chunk");
  await assertRejects(bytes(good, "400,0,", NOT_UTF8), ".csv", message);
  const line = `{"step":0,"epoch":0,"A.loss":1,"A.lr":0.1}\n`;
  await assertRejects(bytes(line, `{"step":1,"x":"`, NOT_UTF8, `"}\n`), ".jsonl", message);
  // A file that ends inside a character (the first byte of é).
  await assertRejects(
    bytes("step,epoch,A.loss,A.lr\n0,0,1,0.1\n", new Uint8Array([0xc3])),
    ".csv",
    message,
  );
  // UTF-8 beyond ASCII reaches the reader as itself, not as a replacement character.
  await assertRejects(bytes('step,epoch,A.loss,A.lr\n0,0,"é",0.1\n'), ".csv", `not a number: "é"`);
});

Deno.test("a summary or manifest that is not UTF-8 is one line saying so", async () => {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeFile(path, bytes(`{"steps": "`, NOT_UTF8, `"}`));
    const e = await readJsonFile(path).then(() => null, (e) => e);
    if (!(e instanceof ReportError)) throw new Error(`not refused: ${e}`);
    assertEquals(e.message, `${path}: not UTF-8 text (a binary file?)`);
    // With a BOM, UTF-8 JSON is read.
    await Deno.writeFile(path, bytes("\uFEFF", `{"steps": "é"}`));
    assertEquals(await readJsonFile(path), { steps: "é" });
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("bad JSON Lines: one line naming the problem", async () => {
  await assertRejects("", ".jsonl", "empty file");
  await assertRejects(
    `{"step":0,"epoch":0,"A.loss":1,"A.lr":0.1}\n{"step":1,`,
    ".jsonl",
    "line 2",
    "not valid JSON",
  );
  await assertRejects(`[1,2]\n`, ".jsonl", "line 1", "expected a JSON object");
  await assertRejects(
    `{"step":0,"epoch":0,"A.loss":"x","A.lr":0.1}\n`,
    ".jsonl",
    `A.loss: expected a number or null, got "x"`,
  );
  await assertRejects(
    `{"step":0,"epoch":0,"A.loss":1,"A.lr":0.1,"A.nope":1}\n`,
    ".jsonl",
    `unknown column "A.nope"`,
  );
  await assertRejects(`{"epoch":0,"A.loss":1,"A.lr":0.1}\n`, ".jsonl", "missing step");
  await assertRejects(`{"step":0,"epoch":0,"A.loss":1}\n`, ".jsonl", "missing column A.lr");
  await assertRejects(
    `{"step":0,"epoch":0,"event":"rescale","run":"Z","factor":0.5}\n`,
    ".jsonl",
    `bad event row: run: expected one of A, B, A1, A2, C, got "Z"`,
  );
  await assertRejects(
    `{"step":0,"epoch":0,"event":"rescale","run":"B","factor":0.5,"by":2}\n`,
    ".jsonl",
    "bad event row: (top level): unknown key by (expected step, epoch, event, run, factor)",
  );
  await assertRejects(
    `{"step":0,"epoch":0,"event":"rescale","run":"B","factor":0.5}\n`,
    ".jsonl",
    "no step rows",
  );
});

Deno.test("a missing file is one line", async () => {
  try {
    await readRows("/no/such/file.csv");
  } catch (e) {
    assertEquals((e as Error).message, "/no/such/file.csv: cannot read: no such file");
    return;
  }
  throw new Error("no error");
});

Deno.test("every documented column pattern is known", () => {
  for (
    const c of [
      "step",
      "epoch",
      "event",
      "A.loss",
      "C.eval_acc",
      "A2.eff_lr.L12",
      "B.batch_kl",
      "A1.angle",
    ]
  ) {
    if (typeof classifyColumn(c) === "string") throw new Error(`${c} refused`);
  }
  for (const c of ["A.eff_lr.L01", "B.dist", "loss", "A.batch_kl", "b.loss"]) {
    if (typeof classifyColumn(c) !== "string") throw new Error(`${c} accepted`);
  }
});
