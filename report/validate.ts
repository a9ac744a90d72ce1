/**
 * External input checked by a zod schema, with the first problem as a one-line error.
 *
 * @module
 */

import type { z } from "zod";
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
  throw new ReportError(`${what}: ${field}: ${issue.message}`);
}
