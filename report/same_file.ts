/**
 * The report's output must not be one of its inputs: `deno task report run.csv -o run.csv` would
 * replace the results with the page. "The same" is {@link sameFile}'s: after links, by inode.
 *
 * @module
 */

import { sameFile } from "../pipeline/paths.ts";
import { ReportError } from "./errors.ts";

/** An input file and what it is to the report, as the error names it ("the result file"). */
export interface InputFile {
  path: string;
  role: string;
}

/**
 * Throws a one-line {@link ReportError} when the output `out` (`-`: stdout, never an input) is
 * the same file as one of `inputs`, e.g.
 * `-o: run.csv is also an input (the result file); choose another output`.
 */
export async function refuseOutputAmongInputs(out: string, inputs: InputFile[]): Promise<void> {
  if (out === "-") return;
  for (const input of inputs) {
    if (!await sameFile(out, input.path)) continue;
    // Under another name (a link, another spelling), the input's own name tells which it is.
    const named = input.path === out ? input.role : `${input.role} ${input.path}`;
    throw new ReportError(`-o: ${out} is also an input (${named}); choose another output`);
  }
}
