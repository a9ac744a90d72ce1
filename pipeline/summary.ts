/**
 * The end of a job: held-out accuracy in eval mode, the summary (stderr lines and, written
 * atomically, `--summary FILE` as JSON).
 *
 * @module
 */

import type { PairSummary } from "../stages/monitor.ts";
import type { GpuTrainer } from "../stages/trainer.ts";
import type { Prepared } from "./prepare.ts";
import type { Config } from "./config.ts";
import { plannedMemory, type Trained } from "./train.ts";
import { configHash } from "./config.ts";
import type { RowsWritten } from "../stages/sink.ts";
import { writeFileAtomic } from "../stages/files.ts";
import { VERSION } from "./version.ts";
import type { TilingsUsed } from "./tune.ts";

/** The final summary, printed on stderr and written to `--summary FILE` as JSON. */
export interface RunSummary {
  adapter: string;
  /**
   * The model, e.g. "preresnet-20 (width 16)" or a model file's path, its parameter counts and,
   * for a model file, the SHA-256 of its bytes.
   */
  model: { description: string; parameters: number; s: number; o: number; sha256?: string };
  /** Planned GPU memory (every buffer, bytes; exact in WebGPU), in all and for one run. */
  memory: { bytes: number; per_run_bytes: number };
  /** How the kernels' tilings were chosen, and each tuned one that replaced a default. */
  tilings: TilingsUsed;
  /**
   * Steps applied to the weights, counting those before a resumed checkpoint: the held-out
   * accuracy and the last checkpoint are of this state (steps still in flight when the run
   * stopped are finished first).
   */
  steps: number;
  /** Time and rate of this session's steps. */
  seconds: number;
  steps_per_second: number;
  runs: string[];
  /** Each run against A (THEORY §7 max |Δsoftmax| on the probe batch). */
  pairs: Record<string, PairSummary>;
  /**
   * Per run: the last metered training loss and probe accuracy with the steps they were
   * measured at (the last step, unless --every or --probe-every skipped it before a stop), and
   * the held-out accuracy in eval mode after `steps` steps.
   */
  final: Record<
    string,
    {
      train_loss: number | null;
      train_loss_step: number | null;
      probe_acc: number | null;
      probe_step: number | null;
      heldout_acc: number;
    }
  >;
  rescales: number;
  /** True when stdout was closed early (the run stopped there). */
  output_closed: boolean;
  /** Why the run stopped before its last step: a signal or divergence (null: it did not). */
  stopped: "SIGINT" | "SIGTERM" | "diverged" | null;
  /** The divergence message, when the run diverged. */
  error: string | null;
  /** The checkpoint this session resumed from, and the last one it wrote. */
  resumed_from: string | null;
  checkpoint: string | null;
  /** What the run wrote to stdout (the report checks its input against it). */
  rows: RowsWritten;
  version: string;
  /** `configHash(config)`: the run's trajectory settings, hashed. */
  config_hash: string;
  /** The full validated configuration of the run. */
  config: Config;
}

/** Eval-mode accuracy of every run over the whole held-out split, in probe-sized chunks. */
export async function heldoutAccuracy(trainer: GpuTrainer, p: Prepared): Promise<number[]> {
  const { inputSize: dim, classes } = p.layout, y = p.heldout.y, runs = p.config.runs.length;
  const correct = new Array<number>(runs).fill(0);
  for (let start = 0; start < y.length; start += p.probe.size) {
    const rows = Math.min(p.probe.size, y.length - start);
    const logits = await trainer.evalLogits(p.heldX.slice(start * dim, (start + rows) * dim), rows);
    for (let r = 0; r < runs; r++) {
      for (let i = 0; i < rows; i++) {
        const row = logits.subarray((r * rows + i) * classes, (r * rows + i + 1) * classes);
        let arg = 0;
        for (let c = 1; c < classes; c++) if (row[c] > row[arg]) arg = c;
        if (arg === y[start + i]) correct[r]++;
      }
    }
  }
  return correct.map((c) => c / y.length);
}

/** Builds the summary of a finished (or stopped) training, logs it and writes `--summary`. */
export async function summarise(
  p: Prepared,
  t: Trained,
  adapter: string,
  log: (line: string) => void,
): Promise<RunSummary> {
  const heldoutAcc = await heldoutAccuracy(t.trainer, p);
  const memory = plannedMemory(p.config, p, t.trainer.plannedBytes);
  const final: RunSummary["final"] = {};
  const { last, at } = t.tracker;
  p.config.runs.forEach((r, i) => {
    final[r] = {
      train_loss: last[`${r}.loss`] ?? null,
      train_loss_step: at[`${r}.loss`] ?? null,
      probe_acc: last[`${r}.probe_acc`] ?? null,
      probe_step: at[`${r}.probe_acc`] ?? null,
      heldout_acc: heldoutAcc[i],
    };
  });
  const { layout } = p;
  const summary: RunSummary = {
    adapter,
    model: {
      description: layout.description,
      parameters: layout.size,
      s: layout.sEnd,
      o: layout.size - layout.sEnd,
      ...(p.modelFile ? { sha256: p.modelFile.sha256 } : {}),
    },
    memory: { bytes: memory.bytes, per_run_bytes: memory.perRunBytes },
    tilings: t.tilings,
    steps: t.trainer.stepsDone,
    seconds: t.seconds,
    steps_per_second: t.stepsHere / t.seconds,
    runs: p.config.runs,
    pairs: t.tracker.pairs,
    final,
    rescales: t.tracker.rescales,
    output_closed: t.control.outputClosed,
    stopped: t.control.diverged ? "diverged" : t.control.signal ?? null,
    error: t.control.diverged ?? null,
    resumed_from: p.resume?.file.source ?? null,
    checkpoint: t.checkpoint ?? null,
    rows: t.rows,
    version: VERSION,
    config_hash: configHash(p.config),
    config: p.config,
  };
  for (const line of summaryLines(summary)) log(line);
  if (p.config.summary) {
    await writeFileAtomic(p.config.summary, JSON.stringify(summary, null, 2) + "\n");
  }
  return summary;
}

/** How the tilings were chosen, in a few words. */
function tilingsText(t: TilingsUsed): string {
  if (t.tune === "off") return "defaults (--tune off)";
  const n = Object.keys(t.kernels).length;
  if (n) return `${n} tuned (from ${t.from})`;
  return t.from ? "defaults (none tuned in the cache)" : "defaults (no tilings cache)";
}

/** Bytes in MiB, as the summary and inspect print them. */
export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 24 ? 1 : 0)} MiB`;
}

/** The summary as stderr lines. */
export function summaryLines(s: RunSummary): string[] {
  const pct = (v: number | null) => (v === null ? "-" : `${(100 * v).toFixed(1)}%`);
  const lines = [
    `summary: ${s.steps} steps in ${s.seconds.toFixed(1)} s (${
      s.steps_per_second.toFixed(2)
    } steps/s) on ${s.adapter}; model ${s.model.description} (S ${s.model.s}, O ${s.model.o}); ` +
    `GPU memory ${mib(s.memory.bytes)} (${mib(s.memory.per_run_bytes)} for one run); ` +
    `tilings: ${tilingsText(s.tilings)}` +
    (s.rescales ? `, ${s.rescales} rescales` : "") +
    (s.resumed_from ? `, resumed from ${s.resumed_from}` : "") +
    (s.output_closed ? ", stopped: stdout closed" : "") +
    (s.stopped ? `, stopped: ${s.stopped}` : "") +
    (s.checkpoint ? `; last checkpoint ${s.checkpoint}` : ""),
  ];
  // A figure measured before the last step says so (a stop between metered steps).
  const at = (step: number | null) =>
    step === null || step === s.steps - 1 ? "" : ` (at step ${step})`;
  for (const [r, f] of Object.entries(s.final)) {
    lines.push(
      `  ${r.padEnd(2)}: held-out accuracy ${pct(f.heldout_acc)} (eval mode), probe accuracy ${
        pct(f.probe_acc)
      }${at(f.probe_step)}, last train loss ${f.train_loss?.toFixed(4) ?? "-"}${
        at(f.train_loss_step)
      }`,
    );
  }
  const onsets = (o: Record<string, number | null>) =>
    Object.entries(o).map(([t, step]) => `>${t} at ${step ?? "never"}`).join(", ");
  for (const [r, p] of Object.entries(s.pairs)) {
    lines.push(
      `  A vs ${r}: max |Δsoftmax| on the training batch ${p.max_batch_maxprob.toExponential(2)}` +
        ` (first step ${onsets(p.batch_first_step_above)}); on the probe ${
          p.max_dist_maxprob.toExponential(2)
        }, final ${p.final_dist_maxprob.toExponential(2)} (first probe step ${
          onsets(p.first_step_above)
        })`,
    );
  }
  return lines;
}
