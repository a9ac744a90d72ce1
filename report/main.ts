/**
 * `deno task report`: reads the trainer's CSV or JSON Lines output (files, or stdin) and writes
 * one self-contained HTML page of plots and tables; given several results or a sweep folder,
 * one comparison page. Logs and errors go to stderr (an error is one `error: ...` line and exit
 * code 1, and leaves no output file); stdout carries nothing but `--help`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { checkOutputPath } from "../pipeline/paths.ts";
import { OUTPUT_DEVICES, writeFileAtomic } from "../stages/files.ts";
import { accumulate } from "./accumulate.ts";
import { log, printHelp, runCommand } from "./cli.ts";
import { loadComparison } from "./compare.ts";
import { oneLine, ReportError } from "./errors.ts";
import { readRows, sourceName } from "./input.ts";
import { inputFiles, namedFiles, resolveInputs } from "./inputs.ts";
import { comparePage } from "./page_sweep.ts";
import { runPage } from "./page_run.ts";
import { refuseOutputAmongInputs } from "./same_file.ts";
import { readSummary } from "./summary_file.ts";
import { checkSummaryRows } from "./summary_match.ts";
import { PLOT_WIDTH } from "./theme.ts";

/** Where the page goes without `-o`. */
export const DEFAULT_OUTPUT = "report.html";

const HELP = `Usage: deno task report [FILE ... | DIR | -] [-o ${DEFAULT_OUTPUT}] [--summary FILE]
Writes one self-contained HTML page (inline SVG plots, no network at view time) from the
trainer's CSV or JSON Lines output: a file, or stdin (no FILE, or -), e.g.
  deno task train --summary s.json | deno task report --summary s.json -o run.html
Several result files, or a sweep folder (deno task sweep --out DIR), give one comparison page.

  -o, --output FILE  the page to write (default: ${DEFAULT_OUTPUT}; - for stdout); not an input
  --summary FILE     the trainer's --summary JSON of a single result (adapter, config,
                     held-out accuracy); a .json input or FILE's <stem>.summary.json also works;
                     it must describe the rows read (read after them: stdin's end)
  --title TEXT       the page's title
  -h, --help         this text`;

/**
 * Checks `-o` before anything is read: a file its folder lets us create, or one of the devices
 * every output may name (`/dev/null`, `/dev/stderr`). Any other device, `/dev/stdout` too, is
 * refused in words that give the way to stdout: Deno opens most devices only with `--allow-all`,
 * which the task does not give (its own message would advise that flag), and the others
 * (`/dev/zero`) are no place for a page either.
 */
async function checkPageOutput(out: string): Promise<void> {
  if (out === "-" || OUTPUT_DEVICES.has(out)) return;
  // A device Deno will not even look at (`/dev/full`) is one still: stat fails there.
  const info = await Deno.stat(out).catch(() => null);
  const device = info
    ? info.isCharDevice || info.isBlockDevice || info.isSocket
    : out.startsWith("/dev/");
  if (device) {
    throw new ReportError(
      `-o: ${out} is a device; this program writes only files, ${
        [...OUTPUT_DEVICES].join(" and ")
      } (use -o - for stdout)`,
    );
  }
  await checkOutputPath("-o", out);
}

/**
 * Writes the page once it is whole: to stdout for `-`; else through a temporary file and a
 * rename, so that a failure leaves nothing (`writeFileAtomic` writes a named pipe in place, and
 * serves `/dev/null` and `/dev/stderr` without opening them).
 */
async function writeOutput(path: string, html: string): Promise<void> {
  if (path !== "-") return await writeFileAtomic(path, html);
  const bytes = new TextEncoder().encode(html);
  try {
    for (let done = 0; done < bytes.length;) done += await Deno.stdout.write(bytes.subarray(done));
  } catch (e) {
    // "No space left on device (os error 28)" (`> /dev/full`) -> "No space left on device"
    const why = oneLine(e).replace(/\s*\(os error \d+\)[^]*$/, "");
    throw new ReportError(`stdout: cannot write the page: ${why}`);
  }
}

/** Runs the report command with `args`; returns the exit code. */
export function main(args: string[]): Promise<number> {
  return runCommand(async () => {
    let parsed;
    try {
      parsed = parseArgs({
        args,
        options: {
          output: { type: "string", short: "o" },
          summary: { type: "string" },
          title: { type: "string" },
          help: { type: "boolean", short: "h" },
        },
        strict: true,
        allowPositionals: true,
      });
    } catch (e) {
      throw new ReportError(`command line: ${oneLine(e)}`);
    }
    const { values, positionals } = parsed;
    if (values.help) return printHelp(HELP);
    const out = values.output ?? DEFAULT_OUTPUT;
    await checkPageOutput(out);
    if ((positionals.length === 0 || positionals.includes("-")) && Deno.stdin.isTerminal()) {
      throw new ReportError(
        "no input: give result files or a sweep folder, or pipe the trainer's output",
      );
    }
    const started = performance.now();
    // The page must not replace an input: the files named are compared with it before any is
    // opened, those found from them (a summary beside a result, a sweep's files) before they are.
    await refuseOutputAmongInputs(out, await namedFiles(positionals, values.summary));
    const inputs = await resolveInputs(positionals, values.summary);
    await refuseOutputAmongInputs(out, inputFiles(inputs));
    let html: string;
    if (inputs.mode === "run") {
      const source = sourceName(inputs.result);
      const hash = createHash("sha256");
      const rows = await readRows(inputs.result, hash);
      const data = await accumulate(rows, source, { capacity: 2 * PLOT_WIDTH });
      // Read only now, after the rows' end: `train --summary s.json | report --summary s.json`
      // has the trainer write s.json before it closes stdout, so before that it may be missing
      // or an earlier run's.
      const summary = inputs.summary ? await readSummary(inputs.summary) : null;
      if (summary) {
        const name = values.summary ? `--summary ${inputs.summary}` : inputs.summary!;
        checkSummaryRows(summary, name, data, hash.digest("hex"));
      }
      html = await runPage(data, summary, values.title ?? `wd-explr report: ${basename(source)}`);
    } else {
      const c = await loadComparison(inputs.points, inputs.manifest, inputs.source);
      html = await comparePage(c, values.title ?? `wd-explr sweep: ${inputs.source}`);
    }
    await writeOutput(out, html);
    const plots = html.split('<figure class="plot"').length - 1;
    const seconds = (performance.now() - started) / 1000;
    log(
      `report: ${out}, ${plots} plots, ${(html.length / 1024).toFixed(0)} KiB, ${
        seconds.toFixed(1)
      } s`,
    );
    return 0;
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
