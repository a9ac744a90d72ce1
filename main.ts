/**
 * The command line: parse and validate the flags, acquire the GPU, run the pipeline. Data goes
 * to stdout; logs, progress, the summary and errors (one line each) go to stderr. `main.ts
 * inspect [flags]` (`deno task inspect`) prints the model the same flags would train, with no
 * GPU (pipeline/inspect.ts); `main.ts tune [flags]` (`deno task tune`) tunes the kernel tilings
 * of the step the same flags would train and saves them in the tilings cache (pipeline/tune.ts),
 * printing one JSON object of what it measured.
 *
 * Exit codes: 0 done (also when stdout was closed early), 1 bad input, a failed or diverged
 * run, 2 no WebGPU adapter, 130 / 143 stopped by SIGINT / SIGTERM (after finishing the step in
 * flight, writing a checkpoint when checkpointing is on, flushing stdout and writing the
 * summary; a second signal exits at once). `TRAIN_DEBUG=1` adds the stack trace of an error.
 *
 * @module
 */

import {
  gpuChoiceOf,
  helpText,
  ignoredByModel,
  MODEL_SETTINGS,
  parseCommandLine,
} from "./pipeline/config.ts";
import { checkOutputPath, checkOutputsApart, sameOrInside } from "./pipeline/paths.ts";
import { runPipeline, saveInitialWeights } from "./pipeline/pipeline.ts";
import { inspectModel } from "./pipeline/inspect.ts";
import { tuneCommand } from "./pipeline/tune.ts";
import { dirOwner } from "./pipeline/train.ts";
import { checkCheckpointDir } from "./stages/checkpoint_dir.ts";
import { NAMED_DATASETS } from "./stages/data/dataset.ts";
import { RunControl } from "./stages/step.ts";
import { acquireGpu, gpuName, GpuUnavailableError } from "./shaders/gpu.ts";

const encoder = new TextEncoder();
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;
const log = (line: string) => Deno.stderr.writeSync(encoder.encode(line + "\n"));

/** Writes asked-for text (help, an inspection) to stdout; `what` names it in an error. */
async function writeStdout(text: string, what: string): Promise<void> {
  const bytes = encoder.encode(text + "\n");
  try {
    for (let done = 0; done < bytes.length;) {
      done += await Deno.stdout.write(bytes.subarray(done));
    }
  } catch (e) {
    const why = (e as Error).message.replace(/\s*\(os error \d+\)$/, "");
    throw new Error(`stdout: cannot write ${what}: ${why}`);
  }
}

/** Runs the CLI with `args`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  try {
    const command = args[0] === "inspect" || args[0] === "tune" ? args[0] : "train";
    const cmd = await parseCommandLine(command === "train" ? args : args.slice(1));
    if (cmd.help) {
      // Asked-for output, so stdout (`--help | less`); no data is written in this case.
      await writeStdout(helpText(), "the help text");
      return 0;
    }
    const { config } = cmd;
    if (command === "inspect") {
      await writeStdout(await inspectModel(config), "the inspection");
      return 0;
    }
    if (command === "tune") {
      const gpu = await acquireGpu(gpuChoiceOf(config));
      log(`adapter: ${gpuName(gpu)}`);
      const report = await tuneCommand(config, gpu, log);
      await writeStdout(JSON.stringify(report), "the tuning report");
      return 0;
    }
    for (const k of ignoredByModel(config, cmd.given)) {
      log(
        `warning: --${k} applies to --model ${
          MODEL_SETTINGS[k]
        }; --model ${config.model} ignores it`,
      );
    }
    // Output paths first: a bad one is found now, not after the training it would record.
    const dataPath = NAMED_DATASETS.has(config.data) ? undefined : config.data;
    await checkOutputsApart(config, cmd.configFile, dataPath);
    if (config.summary) await checkOutputPath("--summary", config.summary);
    if (config["save-init"]) {
      await checkOutputPath("--save-init", config["save-init"]);
      await saveInitialWeights(config, log);
      return 0;
    }
    const dir = config["checkpoint-dir"];
    if (dir) {
      await Deno.mkdir(dir, { recursive: true }).catch(() => {}); // checked just below
      await checkOutputPath("--checkpoint-dir", `${dir}/step-0.safetensors`);
      const resumesHere = config.resume !== undefined && await sameOrInside(config.resume, dir);
      await checkCheckpointDir(dir, dirOwner(config), resumesHere);
    }
    const gpu = await acquireGpu(gpuChoiceOf(config));
    log(`adapter: ${gpuName(gpu)}`);
    const live = !config.quiet && Deno.stderr.isTerminal();
    let progressShown = false;
    const control = new RunControl();
    const onSignal = (signal: keyof typeof SIGNAL_EXIT) => () => {
      if (control.signal) Deno.exit(SIGNAL_EXIT[control.signal]);
      control.signal = signal;
      log(`${signal}: finishing the step in flight (a second ${signal} exits at once)`);
    };
    const handlers = (["SIGINT", "SIGTERM"] as const).map((sig) => [sig, onSignal(sig)] as const);
    for (const [sig, handler] of handlers) Deno.addSignalListener(sig, handler);
    await runPipeline(config, gpu, {
      control,
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
    }).finally(() => {
      for (const [sig, handler] of handlers) Deno.removeSignalListener(sig, handler);
    });
    if (control.diverged) {
      log(`error: ${control.diverged}`);
      return 1;
    }
    return control.signal ? SIGNAL_EXIT[control.signal] : 0;
  } catch (e) {
    // One line, nothing cut: interior line breaks become spaces.
    const text = e instanceof Error ? e.message : String(e);
    const message = text.trim().replace(/\s*[\r\n]+\s*/g, " ");
    log(`error: ${message}`);
    if (Deno.env.get("TRAIN_DEBUG")) console.error(e);
    return e instanceof GpuUnavailableError ? 2 : 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
