/**
 * The whole job in three parts: {@link prepare} (data, model, plan, initial state, startup
 * checks; no GPU), {@link train} (the stream stages on the GPU) and {@link summarise}.
 *
 * @module
 */

import { gpuName } from "../shaders/gpu.ts";
import type { Config } from "./config.ts";
import type { Gpu } from "../shaders/gpu.ts";
import { describe, prepare } from "./prepare.ts";
import { saveWeights } from "./weights.ts";
import { type PipelineIO, train } from "./train.ts";
import { type RunSummary, summarise } from "./summary.ts";

export type { PipelineIO } from "./train.ts";
export type { RunSummary } from "./summary.ts";

/**
 * Runs the whole job and returns its summary (also logged, and written with `--summary`),
 * also when it stopped early: `io.control` says why (a signal, divergence).
 */
export async function runPipeline(config: Config, gpu: Gpu, io: PipelineIO): Promise<RunSummary> {
  const prepared = await prepare(config);
  io.log(describe(prepared));
  for (const w of prepared.warnings) io.log(`warning: ${w}`);
  const trained = await train(prepared, gpu, io);
  return await summarise(prepared, trained, gpuName(gpu), io.log);
}

/** `--save-init FILE`: writes run A's initial weights (no GPU, no training). */
export async function saveInitialWeights(config: Config, log: (line: string) => void) {
  const p = await prepare(config);
  await saveWeights(config["save-init"]!, p.layout, p.init.params.subarray(0, p.layout.size));
  log(`initial weights of run A (${p.layout.description}) written to ${config["save-init"]}`);
}
