/**
 * What the report and sweep commands share at their edge: stderr logging and the rule that any
 * failure is one `error: ...` line on stderr and exit code 1, with stdout left untouched.
 *
 * @module
 */

import { oneLine } from "./errors.ts";

const encoder = new TextEncoder();

/** Writes one line to stderr (stdout carries nothing but asked-for output). */
export function log(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/** Runs `body`; any error becomes one `error:` line and exit code 1. */
export async function runCommand(body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    log(`error: ${oneLine(e)}`);
    if (Deno.env.get("REPORT_DEBUG")) console.error(e);
    return 1;
  }
}

/** Writes asked-for text (`--help`) to stdout. */
export async function printHelp(text: string): Promise<number> {
  await Deno.stdout.write(encoder.encode(text + "\n"));
  return 0;
}
