/**
 * External input checked by a zod schema, with the first problem as a one-line error. Where a
 * closed set is expected (an enum, a literal, a strict object's keys) the error lists it, since
 * zod's own words ("Invalid input", `"A"|"B"`) leave the user guessing.
 *
 * @module
 */

import { z } from "zod";
import { ReportError } from "./errors.ts";

/** `value` parsed by `schema`; throws `<what>: <field>: <problem>` as a {@link ReportError}. */
export function parseWith<T extends z.ZodType>(
  schema: T,
  value: unknown,
  what: string,
): z.output<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue.path.length > 0 ? issue.path.join(".") : "(top level)";
  const input = issue.path.reduce<unknown>(
    (v, k) => (typeof v === "object" && v !== null ? (v as Record<PropertyKey, unknown>)[k] : v),
    value,
  );
  throw new ReportError(`${what}: ${field}: ${problem(issue, schema, input)}`);
}

/** The issue in our words: the allowed values or keys listed where the set is closed. */
function problem(issue: z.core.$ZodIssue, schema: z.ZodType, input: unknown): string {
  if (issue.code === "invalid_value") return `${oneOf(issue.values)}, got ${got(input)}`;
  if (issue.code === "invalid_union") {
    // A union of literals (`"csv" | "jsonl"`): each branch's issue is one invalid_value.
    const values = issue.errors.flatMap((b) =>
      b.length === 1 && b[0].code === "invalid_value" ? b[0].values : [undefined]
    );
    if (!values.includes(undefined)) return `${oneOf(values)}, got ${got(input)}`;
  }
  if (issue.code === "unrecognized_keys") {
    const keys = keysAt(schema, issue.path);
    const allowed = keys ? ` (expected ${keys.join(", ")})` : "";
    return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.join(", ")}${allowed}`;
  }
  return issue.message.replace(/^Invalid (input|option): /, "");
}

function oneOf(values: readonly unknown[]): string {
  const shown = values.map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
  return shown.length === 1 ? `expected ${shown[0]}` : `expected one of ${shown.join(", ")}`;
}

/** The value as the error shows it (JSON, cut short: a line must stay a line). */
function got(input: unknown): string {
  if (input === undefined) return "nothing";
  const text = JSON.stringify(input);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/** The keys of the object schema at `path` inside `schema` (null: not an object there). */
function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] | null {
  let s: z.ZodType = schema;
  for (const step of [...path, null]) {
    while (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap() as z.ZodType;
    if (step === null) break;
    if (s instanceof z.ZodArray && typeof step === "number") s = s.element as z.ZodType;
    else if (s instanceof z.ZodObject) s = s.shape[String(step)];
    else return null;
  }
  return s instanceof z.ZodObject ? Object.keys(s.shape) : null;
}
