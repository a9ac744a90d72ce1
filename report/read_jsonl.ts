/**
 * Reads the trainer's JSON Lines output as a stream of rows: the bytes go through a
 * `TextDecoderStream` and a line splitter, and each line is parsed on its own. A missing key
 * means "not measured"; `null` means measured but NaN or ±Infinity (JSON has no NaN).
 *
 * @module
 */

import { z } from "zod";
import { RUN_NAMES } from "../core/runs.ts";
import { checkColumn, runsOf } from "./columns.ts";
import { ReportError } from "./errors.ts";
import { lineSplitter } from "./lines.ts";
import { checkStep, type Row } from "./rows.ts";
import { parseWith } from "./validate.ts";

const eventSchema = z.strictObject({
  step: z.number().int().min(0),
  epoch: z.number().int().min(0),
  event: z.literal("rescale"),
  run: z.enum(RUN_NAMES),
  factor: z.number().positive(),
});

/**
 * The rows of a JSON Lines stream. Throws a {@link ReportError} naming the source and line for a
 * line that is not a JSON object, an unknown key, a value that is not a number or null, a bad
 * event row, rows out of step order, no rows at all, or (at the end) a column that never came.
 */
export async function* readJsonl(
  bytes: ReadableStream<Uint8Array>,
  source: string,
): AsyncGenerator<Row> {
  const lines = bytes.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter());
  const known = new Set<string>(["step", "epoch"]);
  let line = 0, previous = 0, rows = 0;
  for await (const text of lines) {
    line++;
    if (text.trim() === "") continue;
    const where = `${source}: line ${line}`;
    const obj = parseObject(text, where);
    if ("event" in obj) {
      const e = parseWith(eventSchema, obj, `${where}: bad event row`);
      checkStep(e.step, previous, where);
      previous = e.step;
      yield { kind: "event", ...e };
      continue;
    }
    const step = integer(obj.step, "step", where), epoch = integer(obj.epoch, "epoch", where);
    checkStep(step, previous, where);
    previous = step;
    const values: Record<string, number | undefined> = {};
    for (const [key, v] of Object.entries(obj)) {
      if (key === "step" || key === "epoch") continue;
      if (!known.has(key)) {
        checkColumn(key, where);
        known.add(key);
      }
      if (v === null) values[key] = NaN;
      else if (typeof v === "number") values[key] = v;
      else {
        throw new ReportError(
          `${where}: ${key}: expected a number or null, got ${JSON.stringify(v)}`,
        );
      }
    }
    rows++;
    yield { kind: "step", step, epoch, values };
  }
  if (rows === 0) throw new ReportError(`${source}: no step rows`);
  runsOf(known, source);
}

function parseObject(text: string, where: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // V8 quotes the line in its message: keep the error line short.
    const message = (e as Error).message;
    const short = message.length > 160 ? `${message.slice(0, 157)}...` : message;
    throw new ReportError(`${where}: not valid JSON: ${short}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ReportError(`${where}: expected a JSON object`);
  }
  return value as Record<string, unknown>;
}

function integer(v: unknown, key: string, where: string): number {
  if (v === undefined) throw new ReportError(`${where}: missing ${key}`);
  if (typeof v !== "number") {
    throw new ReportError(`${where}: ${key}: expected an integer, got ${JSON.stringify(v)}`);
  }
  return v;
}
