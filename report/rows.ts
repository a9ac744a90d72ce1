/**
 * The rows the readers hand on: a step's metrics, or an event (a Lemma-2 rescale), whatever the
 * file format was.
 *
 * @module
 */

import { RUN_NAMES, type RunName } from "../core/runs.ts";
import { ReportError } from "./errors.ts";

/**
 * One metered step. `values` maps column names (not step, epoch, event) to numbers: a key that
 * is absent or undefined was not measured at this step; NaN or ±Infinity was measured but not
 * finite (CSV `NaN`, JSON Lines `null`).
 */
export interface StepRow {
  kind: "step";
  step: number;
  epoch: number;
  values: Record<string, number | undefined>;
}

/** An event row: run `run` was rescaled by `factor` (Lemma 2) at `step`. */
export interface EventRow {
  kind: "event";
  step: number;
  epoch: number;
  event: "rescale";
  run: RunName;
  factor: number;
}

/** A row of the trainer's output. */
export type Row = StepRow | EventRow;

const RESCALE = /^rescale (\S+) x(\S+)$/;

/** The event of a CSV `event` cell (`rescale B x0.25`); throws on anything else. */
export function parseEventCell(
  cell: string,
  step: number,
  epoch: number,
  where: string,
): EventRow {
  const m = RESCALE.exec(cell);
  const factor = m ? Number(m[2]) : NaN;
  if (m && !(RUN_NAMES as readonly string[]).includes(m[1])) {
    throw new ReportError(
      `${where}: column event: run ${JSON.stringify(m[1])} is not one of ${RUN_NAMES.join(", ")}`,
    );
  }
  if (!m || !(factor > 0)) {
    throw new ReportError(
      `${where}: column event: expected "rescale <run> x<factor>", got ${JSON.stringify(cell)}`,
    );
  }
  return { kind: "event", step, epoch, event: "rescale", run: m[1] as RunName, factor };
}

/** Throws unless `step` is a whole number >= 0 and not before `previous` (rows are in order). */
export function checkStep(step: number, previous: number, where: string): void {
  if (!Number.isInteger(step) || step < 0) {
    throw new ReportError(`${where}: column step: expected an integer >= 0, got ${step}`);
  }
  if (step < previous) {
    throw new ReportError(
      `${where}: step ${step} comes after step ${previous} (rows out of order)`,
    );
  }
}
