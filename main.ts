/**
 * The command line: parse and validate the flags, acquire the GPU, run the pipeline. Data goes
 * to stdout; logs, progress, the summary and errors (one line each) go to stderr.
 *
 * Exit codes: 0 done (also when stdout was closed early), 1 bad input or a failed run,
 * 2 no WebGPU adapter. `TRAIN_DEBUG=1` adds the stack trace of an error.
 *
 * @module
 */

import { helpText, parseCommandLine } from "./pipeline/config.ts";
import { runPipeline } from "./pipeline/pipeline.ts";
import { acquireGpu, GpuUnavailableError } from "./shaders/gpu.ts";

const encoder = new TextEncoder();
const log = (line: string) => Deno.stderr.writeSync(encoder.encode(line + "\n"));

/** Runs the CLI with `args`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  try {
    const cmd = await parseCommandLine(args);
    if (cmd.help) {
      // Asked-for output, so stdout (`--help | less`); no data is written in this case.
      await Deno.stdout.write(encoder.encode(helpText() + "\n"));
      return 0;
    }
    const { config } = cmd;
    const gpu = await acquireGpu();
    log(`adapter: ${gpu.adapterDescription}`);
    const live = !config.quiet && Deno.stderr.isTerminal();
    let progressShown = false;
    await runPipeline(config, gpu, {
      stdout: Deno.stdout.writable,
      log: (line) => {
        if (progressShown) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
        progressShown = false;
        log(line);
      },
      progress: live
        ? (line) => {
          Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${line}`));
          progressShown = true;
        }
        : undefined,
    });
    return 0;
  } catch (e) {
    const message = e instanceof Error ? e.message.split("\n")[0] : String(e);
    log(`error: ${message}`);
    if (Deno.env.get("TRAIN_DEBUG")) console.error(e);
    return e instanceof GpuUnavailableError ? 2 : 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
