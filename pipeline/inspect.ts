/**
 * `deno task inspect`: the model a configuration names, as the trainer would run it, without a
 * GPU: the graph node by node, every weight's group with the reason, and the float64 check that
 * doubling S leaves the logits unchanged, run on the probe's first examples from run A's initial
 * weights (the check `train` runs at startup), and the step's planned GPU memory. The same flags
 * as `train` choose the model, the data and the runs; the text goes to stdout.
 *
 * @module
 */

import type { Config } from "./config.ts";
import { invarianceRows, prepareModel } from "./prepare.ts";
import { initParams } from "../core/init.ts";
import { seeds } from "../core/prng.ts";
import { measureScaleInvariance } from "../reference/invariance.ts";
import { inspectionText } from "./inspect_table.ts";
import { plannedMemory } from "./train.ts";

/** The inspection of `config`'s model on its data (per training step of `--batch-size` rows). */
export async function inspectModel(config: Config): Promise<string> {
  const model = await prepareModel(config), { layout, probe } = model;
  const params = Float64Array.from(
    initParams(layout, seeds(config).init),
    (v, i) => (i < layout.sEnd ? v * config["init-scale"] : v),
  );
  const invariance = measureScaleInvariance(
    layout,
    params,
    probe.x,
    invarianceRows(layout, probe.size),
  );
  const memory = { ...plannedMemory(config, model), runs: config.runs.length };
  return inspectionText(layout, { rows: config["batch-size"], invariance, memory });
}
