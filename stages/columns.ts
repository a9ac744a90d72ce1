/**
 * The output columns, declared once: each column's name and how its value is formed from the
 * named fields of the metrics record (`metrics_record.ts`) and the run plan. The column list
 * (CSV header, JSON Lines keys, the report's known metrics and the summary's `final` values) and
 * every row's values both come from these tables.
 *
 * @module
 */

import type { RunName, RunStep } from "../core/runs.ts";
import { angleFromSums, angularEquilibrium } from "../core/angles.ts";
import type { MetricsRecord } from "./metrics_record.ts";
import type { StepRecord } from "./step.ts";

/** What one run's column is formed from at one metered step. */
export interface ColumnInput {
  run: RunName;
  /** A field of this run's record (element `index` of a per-tensor field). */
  at(name: string, index?: number): number;
  /** A field of run A's record. */
  atA(name: string): number;
  plan: RunStep;
  planA: RunStep;
  /** Rows of the training batch, and of the probe. */
  rows: number;
  probeRows: number;
}

/** A column of every run (`X.name`) or of every pair A–X (`X.name`, X ≠ A). */
interface ColumnSpec {
  name: string;
  /** Measured only on steps that evaluate the probe, or the eval-mode probe. */
  on?: "probe" | "evalMode";
  value(c: ColumnInput): number | undefined;
}

const RUN_COLUMNS: readonly ColumnSpec[] = [
  { name: "loss", value: (c) => c.at("loss") },
  { name: "acc", value: (c) => c.at("correct") / c.rows },
  { name: "lr", value: (c) => c.plan.lrS },
  { name: "wnorm", value: (c) => Math.sqrt(c.at("norm2")) },
  { name: "eff_lr", value: (c) => c.plan.lrS / c.at("norm2_before") },
  {
    name: "angular_update",
    value: (c) =>
      angleFromSums(c.at("prev_diff2"), c.at("prev_diff_sum"), c.at("norm2"), c.at("norm2_before")),
  },
  // Run B (no weight decay) is judged against A's prediction, since it mimics A.
  { name: "angular_pred", value: (c) => angularEquilibrium(c.run === "B" ? c.planA : c.plan) },
  {
    name: "grad_cos",
    value: (c) => c.at("grad_dot_w") / Math.sqrt(c.at("grad_norm2") * c.at("norm2_before")),
  },
  { name: "probe_acc", on: "probe", value: (c) => c.at("probe.correct") / c.probeRows },
  { name: "eval_acc", on: "evalMode", value: (c) => c.at("eval.correct") / c.probeRows },
];

/** The function-space distances of one record group as the columns `<prefix>_*`. */
function distanceColumns(
  prefix: string,
  group: string,
  on?: ColumnSpec["on"],
): ColumnSpec[] {
  const rows = (c: ColumnInput) => group === "batch" ? c.rows : c.probeRows;
  const f = (c: ColumnInput, term: string) => c.at(`${group}.${term}`);
  return [
    { name: `${prefix}_maxprob`, on, value: (c) => f(c, "maxprob") },
    { name: `${prefix}_rel_l2`, on, value: (c) => Math.sqrt(f(c, "diff2") / f(c, "norm2")) },
    { name: `${prefix}_agree`, on, value: (c) => f(c, "agree") / rows(c) },
    { name: `${prefix}_kl`, on, value: (c) => f(c, "kl") / rows(c) },
  ];
}

const PAIR_COLUMNS: readonly ColumnSpec[] = [
  ...distanceColumns("batch", "batch"),
  ...distanceColumns("dist", "probe", "probe"),
  { name: "norm_ratio", value: (c) => Math.sqrt(c.at("norm2") / c.atA("norm2")) },
  { name: "c_pred", value: (c) => Number.isNaN(c.plan.cPred) ? undefined : c.plan.cPred },
  {
    name: "angle",
    value: (c) =>
      angleFromSums(
        c.at("a_diff2"),
        c.at("a_diff_sum"),
        c.atA("scaled_norm2"),
        c.at("scaled_norm2"),
      ),
  },
  ...distanceColumns("eval", "eval", "evalMode"),
];

/** The per-layer effective learning rate of S tensor `l`: `X.eff_lr.L<l>`. */
const layerColumn = (l: number) => `eff_lr.L${l}`;

/** What the output columns depend on. */
export interface ColumnOptions {
  runs: RunName[];
  /** S tensors (the per-layer columns L0, L1, ...: group S in layout order). */
  sTensors: number;
  perLayer: boolean;
}

/**
 * The output columns in order: step, epoch; each per-run metric for every run (A.loss, B.loss,
 * ...); with per-layer, each run's per-layer effective lr; then every run's distances against A
 * (B.dist_maxprob, B.norm_ratio, B.c_pred, ...); finally `event` (filled on event rows only).
 */
export function outputColumns(opts: ColumnOptions): string[] {
  const cols = ["step", "epoch"];
  for (const m of RUN_COLUMNS) for (const r of opts.runs) cols.push(`${r}.${m.name}`);
  if (opts.perLayer) {
    for (const r of opts.runs) {
      for (let l = 0; l < opts.sTensors; l++) cols.push(`${r}.${layerColumn(l)}`);
    }
  }
  for (const r of opts.runs.slice(1)) for (const m of PAIR_COLUMNS) cols.push(`${r}.${m.name}`);
  cols.push("event");
  return cols;
}

/** What a row's values are derived with. */
export interface RowOptions extends ColumnOptions {
  record: MetricsRecord;
  probeRows: number;
}

/** Derives one output row's values from a metered step's record. */
export function deriveRow(
  rec: StepRecord,
  opts: RowOptions,
): Record<string, number | undefined> {
  const v: Record<string, number | undefined> = { step: rec.step, epoch: rec.epoch };
  const read = opts.record.reader(rec.metrics);
  const measured = (spec: ColumnSpec) => spec.on === undefined || rec[spec.on];
  opts.runs.forEach((run, r) => {
    const c: ColumnInput = {
      run,
      at: (name, index) => read(r, name, index),
      atA: (name) => read(0, name),
      plan: rec.plan[r],
      planA: rec.plan[0],
      rows: rec.rows,
      probeRows: opts.probeRows,
    };
    const specs = r === 0 ? RUN_COLUMNS : [...RUN_COLUMNS, ...PAIR_COLUMNS];
    for (const spec of specs) v[`${run}.${spec.name}`] = measured(spec) ? spec.value(c) : undefined;
    if (!opts.perLayer) return;
    for (let l = 0; l < opts.sTensors; l++) {
      v[`${run}.${layerColumn(l)}`] = c.plan.lrS / c.at("layer_norm2_before", l);
    }
  });
  return v;
}
