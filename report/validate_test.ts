/**
 * Schema errors in our words: a closed set (an enum, a literal, a union of literals, a strict
 * object's keys) is listed in the error, with the value found.
 */

import { z } from "zod";
import { ReportError } from "./errors.ts";
import { parseWith } from "./validate.ts";

const schema = z.strictObject({
  run: z.enum(["A", "B", "A1"]),
  event: z.literal("rescale"),
  format: z.union([z.literal("csv"), z.literal("jsonl")]).optional(),
  count: z.number().optional(),
  points: z.array(
    z.strictObject({ index: z.number(), outputs: z.strictObject({ rows: z.string() }).optional() }),
  ).optional(),
});

function assertError(value: unknown, message: string): void {
  try {
    parseWith(schema, value, "f.json: bad");
  } catch (e) {
    if (!(e instanceof ReportError)) throw e;
    if (e.message !== message) throw new Error(`${JSON.stringify(e.message)} !== ${message}`);
    return;
  }
  throw new Error(`accepted; expected ${message}`);
}

Deno.test("closed sets are listed with the value found", () => {
  const ok = { run: "A", event: "rescale" };
  parseWith(schema, ok, "f.json");
  assertError({ ...ok, run: "Z" }, `f.json: bad: run: expected one of A, B, A1, got "Z"`);
  assertError({ ...ok, run: undefined }, "f.json: bad: run: expected one of A, B, A1, got nothing");
  assertError({ ...ok, event: "boom" }, `f.json: bad: event: expected rescale, got "boom"`);
  assertError({ ...ok, format: 3 }, "f.json: bad: format: expected one of csv, jsonl, got 3");
  assertError(
    { ...ok, colour: 1 },
    "f.json: bad: (top level): unknown key colour (expected run, event, format, count, points)",
  );
  assertError(
    { ...ok, points: [{ index: 0, outputs: { rows: "0.jsonl", sumary: "x" } }] },
    "f.json: bad: points.0.outputs: unknown key sumary (expected rows)",
  );
  assertError({ ...ok, count: "3" }, "f.json: bad: count: expected number, received string");
});
