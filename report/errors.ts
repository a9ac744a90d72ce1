/**
 * The one error type of the report and sweep commands: its message is the whole line the user
 * sees after `error: `.
 *
 * @module
 */

/** Bad input (a file, a column, a cell, a flag or a grid); the message names the problem. */
export class ReportError extends Error {}

/** `e` as one line: interior line breaks become spaces, so stderr gets a single `error:` line. */
export function oneLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.trim().replace(/\s*[\r\n]+\s*/g, " ");
}

/** The error for an input that cannot be opened, in our words (no Deno permission advice). */
export function cannotRead(source: string, e: unknown): ReportError {
  const why = e instanceof Deno.errors.NotFound
    ? "no such file"
    : oneLine(e).replace(/\s*\(os error \d+\).*$/, "");
  return new ReportError(`${source}: cannot read: ${why}`);
}

/** The error for an input whose bytes are not UTF-8: a binary file, or text in another encoding. */
export function notUtf8(source: string): ReportError {
  return new ReportError(`${source}: not UTF-8 text (a binary file?)`);
}
