/**
 * Tuned tilings for a run (`--tune off|cached|on`) and `deno task tune`. The tilings cache
 * (`tune_cache.ts`) files each kernel instance's choice under this GPU's identity; `cached` (the
 * default) uses what it has and the default tilings elsewhere, `on` tunes what it lacks first
 * and saves it, `deno task tune` tunes every kernel of the configured step again.
 *
 * @module
 */

import type { Config } from "./config.ts";
import { prepareModel, trainerOptions } from "./prepare.ts";
import { VERSION } from "./version.ts";
import {
  defaultTuneCachePath,
  loadTunedTilings,
  saveTunedTilings,
  type TunedEntry,
  type TuneIdentity,
} from "./tune_cache.ts";
import { gpuName } from "../shaders/gpu.ts";
import type { Gpu } from "../shaders/gpu.ts";
import { type TilingOverride, Tilings, tuneKey, type TuneRequest } from "../shaders/tilings.ts";
import { buildableTilings, type TunedKernel, tuneKernels, tuneRequests } from "../stages/tuner.ts";
import type { TrainerOptions } from "../stages/trainer.ts";

/** An error's message, first line. */
const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e)).split("\n")[0];

/** What a tilings cache files this GPU's tunings under. */
export function tuneIdentity(gpu: Gpu): TuneIdentity {
  return {
    implementation: gpu.implementation,
    adapter: gpu.adapterDescription,
    driver: gpu.driver,
    version: VERSION,
  };
}

/** The tilings cache of `config`: `--tune-cache`, else the user's cache folder's. */
export function tuneCachePath(config: Pick<Config, "tune-cache">): string {
  return config["tune-cache"] ?? defaultTuneCachePath(Deno.env.toObject(), Deno.build.os);
}

/** The entry the cache keeps for a tuned kernel. */
function entryOf(t: TunedKernel): TunedEntry {
  return {
    tiling: t.tiling,
    defaultMs: t.defaultMs,
    tunedMs: t.tunedMs,
    tried: t.tried,
    rejected: t.rejected,
    tunedAt: new Date().toISOString(),
  };
}

/** Tunes `requests` and merges what it found into the cache's `entries`. */
async function tuneInto(
  gpu: Gpu,
  entries: Map<string, TunedEntry>,
  requests: TuneRequest[],
  budgetSeconds: number,
  batchRows: number,
  log: (line: string) => void,
): Promise<TunedKernel[]> {
  const tuned = await tuneKernels(gpu, requests, {
    budgetMs: budgetSeconds * 1000,
    batchRows,
    log,
  });
  for (const t of tuned) entries.set(t.key, entryOf(t));
  return tuned;
}

/** A run's tilings and where they came from (a tilings cache's path, a checkpoint's). */
export interface RunTilings {
  tilings: Tilings;
  from: string;
}

/**
 * The tilings `config` asks for on `gpu`, for the step of `options`: undefined with `--tune
 * off`, or when no cache file can be named (one line says so).
 */
export async function runTilings(
  config: Config,
  gpu: Gpu,
  options: TrainerOptions,
  log: (line: string) => void,
): Promise<RunTilings | undefined> {
  if (config.tune === "off") return undefined;
  let path: string;
  try {
    path = tuneCachePath(config);
  } catch (e) {
    log(`${errorText(e)}; default tilings used (--tune-cache FILE names a cache)`);
    return undefined;
  }
  const entries = await loadTunedTilings(path, tuneIdentity(gpu), log);
  const requests = tuneRequests(options, gpu.device.limits);
  if (config.tune === "on") {
    const missing = requests.filter((r) => !entries.has(tuneKey(r)));
    if (missing.length) {
      log(`tune: ${missing.length} kernels of this step are not in ${path}; tuning them`);
      await tuneInto(gpu, entries, missing, config.budget, options.batchRows, log);
      // The run needs the tilings, not the file: one that cannot be written costs only later runs.
      await saveTunedTilings(path, tuneIdentity(gpu), entries).catch((e) =>
        log(`tilings cache ${path} cannot be written (${errorText(e)}); tuned for this run only`)
      );
    }
  }
  const chosen = new Map([...entries].map(([key, e]) => [key, e.tiling]));
  const tilings = await usableTilings(gpu, requests, chosen, `tilings cache ${path}`, log);
  return { tilings, from: path };
}

/**
 * The tilings of `chosen` (a cache's, a checkpoint's) that the kernels of `requests` (a step's,
 * `tuneRequests`) take on `gpu` (buildableTilings); a dropped one is a line that begins with
 * `source`.
 */
export async function usableTilings(
  gpu: Gpu,
  requests: TuneRequest[],
  chosen: ReadonlyMap<string, TilingOverride>,
  source: string,
  log: (line: string) => void,
): Promise<Tilings> {
  return new Tilings(await buildableTilings(gpu, requests, chosen, (l) => log(`${source}: ${l}`)));
}

/** The tilings a run used, for its summary: how they were chosen and each non-default one. */
export interface TilingsUsed {
  tune: Config["tune"];
  /** Where they came from: the tilings cache's path, or the checkpoint's that was resumed. */
  from: string | null;
  /** Kernel key to the tiling that replaced its default. */
  kernels: Record<string, TilingOverride>;
}

/** What a run's tilings replaced in the step that was built with them. */
export function tilingsUsed(config: Config, run: RunTilings | undefined): TilingsUsed {
  const used = [...run?.tilings.used ?? []].sort();
  const kernels = Object.fromEntries(used.map((key) => [key, run!.tilings.chosen.get(key)!]));
  return { tune: config.tune, from: run?.from ?? null, kernels };
}

/** What `deno task tune` prints on stdout (one JSON object). */
export interface TuneReport {
  adapter: string;
  cache: string;
  budget_seconds: number;
  seconds: number;
  kernels: TunedKernel[];
}

/**
 * `deno task tune`: every kernel of `config`'s training step (its model, batch size, runs,
 * precision and probe) tuned again within `--budget` seconds, the cache updated.
 */
export async function tuneCommand(
  config: Config,
  gpu: Gpu,
  log: (line: string) => void,
): Promise<TuneReport> {
  const started = performance.now();
  const model = await prepareModel(config);
  const options = trainerOptions(config, model);
  const path = tuneCachePath(config);
  const entries = await loadTunedTilings(path, tuneIdentity(gpu), log);
  const requests = tuneRequests(options, gpu.device.limits);
  log(`tune: ${model.layout.description}, ${requests.length} kernels, budget ${config.budget} s`);
  const kernels = await tuneInto(gpu, entries, requests, config.budget, options.batchRows, log);
  await saveTunedTilings(path, tuneIdentity(gpu), entries).catch((e) => {
    throw new Error(`tilings cache ${path} cannot be written: ${errorText(e)}`);
  });
  const seconds = (performance.now() - started) / 1000;
  log(`tune: done in ${seconds.toFixed(1)} s; tilings saved to ${path}`);
  return { adapter: gpuName(gpu), cache: path, budget_seconds: config.budget, seconds, kernels };
}
