/**
 * The column model of the trainer's output (README "Output columns"): which names are known,
 * which run or pair each belongs to, and which must be there. A name that matches none of the
 * documented patterns is refused, so a typo or a file from another tool is caught at once.
 *
 * @module
 */

import { RUN_NAMES, type RunName } from "../core/runs.ts";
import { outputColumns } from "../stages/columns.ts";
import { ReportError } from "./errors.ts";

// The trainer's own column list (stages/columns.ts) for runs A and B is the source of the
// metric names, so a column the trainer adds is known here at once.
const TRAINER_COLUMNS = outputColumns({ runs: ["A", "B"], perLayer: false, sTensors: 0 });
const metricsOf = (run: string) =>
  TRAINER_COLUMNS.filter((c) => c.startsWith(`${run}.`)).map((c) => c.slice(run.length + 1));

/** Per-run metrics: `X.<metric>` for every run X (loss, acc, lr, wnorm, eff_lr, ...). */
export const PER_RUN_METRICS: readonly string[] = metricsOf("A");

/**
 * Per-pair metrics: `X.<metric>` for every run X other than A, its comparison with A
 * (batch_*, dist_*, norm_ratio, c_pred, angle, eval_*).
 */
export const PER_PAIR_METRICS: readonly string[] = metricsOf("B").filter((m) =>
  !PER_RUN_METRICS.includes(m)
);

/** What a column name stands for. */
export type Column =
  | { kind: "step" | "epoch" | "event" }
  | { kind: "run"; run: RunName; metric: string }
  | { kind: "layer"; run: RunName; layer: number }
  | { kind: "pair"; run: RunName; metric: string };

const LAYER = /^eff_lr\.L(0|[1-9]\d*)$/;

/** The meaning of column `name`, or a one-line reason why it is not a known column. */
export function classifyColumn(name: string): Column | string {
  if (name === "step" || name === "epoch" || name === "event") return { kind: name };
  const dot = name.indexOf(".");
  if (dot < 0) return "not step, epoch, event or <run>.<metric>";
  const run = name.slice(0, dot), metric = name.slice(dot + 1);
  if (!(RUN_NAMES as readonly string[]).includes(run)) {
    return `run ${run} is not one of ${RUN_NAMES.join(", ")}`;
  }
  const r = run as RunName;
  if (PER_RUN_METRICS.includes(metric)) return { kind: "run", run: r, metric };
  const layer = LAYER.exec(metric);
  if (layer) return { kind: "layer", run: r, layer: Number(layer[1]) };
  if (PER_PAIR_METRICS.includes(metric)) {
    return r === "A" ? "run A is the reference: it has no comparison columns" : {
      kind: "pair",
      run: r,
      metric,
    };
  }
  return `${metric} is not a known metric`;
}

/** Throws a {@link ReportError} (`<where>: unknown column "x": <why>`) unless `name` is known. */
export function checkColumn(name: string, where: string): void {
  const c = classifyColumn(name);
  if (typeof c === "string") throw new ReportError(`${where}: unknown column "${name}": ${c}`);
}

/**
 * The runs the columns name, in order of first appearance (the trainer's `--runs` order). Throws
 * when a column the report needs is missing: step, epoch, and for each run its loss and lr; run A
 * must be there (every distance is measured against it).
 */
export function runsOf(columns: Iterable<string>, where: string): RunName[] {
  const names = new Set(columns), runs: RunName[] = [];
  for (const name of names) {
    const c = classifyColumn(name);
    if (typeof c !== "string" && "run" in c && !runs.includes(c.run)) runs.push(c.run);
  }
  const required = ["step", "epoch", "A.loss", "A.lr"];
  for (const r of runs) required.push(`${r}.loss`, `${r}.lr`);
  const missing = [...new Set(required)].filter((n) => !names.has(n));
  if (missing.length > 0) {
    const s = missing.length > 1 ? "s" : "";
    throw new ReportError(`${where}: missing column${s} ${missing.join(", ")}`);
  }
  return runs;
}
