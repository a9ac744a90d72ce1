/**
 * Synthetic trainer output for the report's tests and size measurements: the trainer's columns
 * for runs A, B, A1 (and optionally the batch distances), smooth curves with a step schedule,
 * distances leaving zero after a few steps, one spike, an eval-mode value every 50 steps and a
 * rescale event row; and a temporary folder for a test's files.
 *
 * @module
 */

import { PER_PAIR_METRICS, PER_RUN_METRICS } from "./columns.ts";

/** Runs `fn` in a fresh temporary folder, removed afterwards (whether `fn` throws or not). */
export async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** What to generate. */
export interface SyntheticOptions {
  rows: number;
  runs?: string[];
  /** Step of a single spike of A–B's distance to 0.5 (none when undefined). */
  spikeAt?: number;
  /** Step of a `rescale B x0.25` event row (none when undefined). */
  rescaleAt?: number;
}

/** The header of the trainer's CSV for `runs`, in the trainer's order. */
export function syntheticColumns(runs: readonly string[]): string[] {
  const cols = ["step", "epoch"];
  for (const m of PER_RUN_METRICS) for (const r of runs) cols.push(`${r}.${m}`);
  for (const r of runs.slice(1)) for (const m of PER_PAIR_METRICS) cols.push(`${r}.${m}`);
  return [...cols, "event"];
}

/** The value of column `name` at `step` of `total` (undefined: not measured). */
function value(name: string, step: number, total: number, o: SyntheticOptions): number | undefined {
  const [run, metric] = [name.slice(0, name.indexOf(".")), name.slice(name.indexOf(".") + 1)];
  const t = step / Math.max(1, total);
  const lr = step < total / 2 ? 0.1 : 0.01;
  if (metric.startsWith("eval_") && step % 50 !== 0) return undefined;
  const grow = step < 10 ? 0 : Math.min(0.8, 1e-7 * Math.exp(step / 8));
  switch (metric) {
    case "loss":
      return 2.3 * Math.exp(-3 * t) + 0.05 * Math.sin(step);
    case "lr":
      return run === "B" ? lr * (1 + t) : lr;
    case "dist_maxprob":
    case "batch_maxprob":
    case "eval_maxprob":
      return step === o.spikeAt && run === "B" ? 0.5 : grow;
    case "c_pred":
      return run === "B" ? 1 + t : 1;
    case "norm_ratio":
      return (run === "B" ? 1 + t : 1) * (1 + 1e-7 * Math.cos(step));
    case "grad_cos":
      return 1e-7 * Math.sin(step);
    default:
      return metric.includes("acc") || metric.includes("agree") ? 0.5 + 0.4 * t : 0.01 * (1 + t);
  }
}

/** The CSV text of the synthetic run, line by line (header first). */
export function* syntheticCsv(o: SyntheticOptions): Generator<string> {
  const cols = syntheticColumns(o.runs ?? ["A", "B", "A1"]);
  yield cols.join(",") + "\n";
  for (let step = 0; step < o.rows; step++) {
    if (step === o.rescaleAt) yield `${step},0${",".repeat(cols.length - 3)},rescale B x0.25\n`;
    const cells = cols.map((c) => {
      if (c === "step") return String(step);
      if (c === "epoch") return "0";
      if (c === "event") return "";
      const v = value(c, step, o.rows, o);
      return v === undefined ? "" : String(v);
    });
    yield cells.join(",") + "\n";
  }
}
