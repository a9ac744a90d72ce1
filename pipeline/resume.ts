/**
 * `--resume DIR|FILE`: reads a checkpoint and checks that the configuration resuming it would
 * follow the same trajectory. Settings that only shape the output (format, metering, the
 * probe, checkpointing, the run's length when the schedule does not depend on it) may differ;
 * any other difference is one error line listing the differing settings.
 *
 * @module
 */

import { scheduleUsesLength } from "../core/schedule.ts";
import { type Config, ConfigError, OUTPUT_SETTINGS, validateConfig } from "./config.ts";
import { CheckpointError, type CheckpointFile, decodeCheckpoint } from "../stages/checkpoint.ts";
import { listCheckpoints } from "../stages/checkpoint_dir.ts";
import type { ModelFile } from "./model_file.ts";

/** Reads the checkpoint `--resume` names: a file, or the newest checkpoint in a folder. */
export async function readCheckpoint(target: string): Promise<CheckpointFile> {
  let path = target;
  try {
    if ((await Deno.stat(target)).isDirectory) {
      const [newest] = await listCheckpoints(target);
      if (newest === undefined) {
        throw new CheckpointError(`--resume: no checkpoint (step-N.safetensors) in ${target}`);
      }
      path = newest;
    }
    return decodeCheckpoint(await Deno.readFile(path), path);
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`--resume: cannot read ${path}: ${(e as Error).message}`);
  }
}

/**
 * Throws a {@link ConfigError} naming every trajectory setting in which `config` differs from
 * the checkpoint's configuration. `usesLength` tells whether the schedule depends on the run's
 * length (cosine, milestones as fractions): then --steps/--epochs must give the same length,
 * which `lengths` compares (planned steps of the checkpoint's run and of this one). A model
 * file must have the bytes the checkpoint recorded (its SHA-256).
 */
export function checkResumable(
  config: Config,
  file: CheckpointFile,
  lengths: (c: Config) => number,
  modelFile?: ModelFile,
): void {
  let saved: Config;
  try {
    saved = validateConfig(file.meta.config, `${file.source}: config`);
  } catch (e) {
    throw new CheckpointError((e as Error).message);
  }
  const keys = new Set([...Object.keys(saved), ...Object.keys(config)]);
  const value = (c: Config, k: string) =>
    JSON.stringify((c as Record<string, unknown>)[k]) ?? "unset";
  const differ = [...keys].filter((k) =>
    !OUTPUT_SETTINGS.has(k) && value(saved, k) !== value(config, k)
  );
  const usesLength = scheduleUsesLength(config.schedule, config.milestones);
  if (usesLength && lengths(saved) !== lengths(config)) {
    differ.push("steps/epochs (the schedule depends on them)");
  }
  if (differ.length === 0 && modelFile && file.meta.modelSha256 !== modelFile.sha256) {
    throw new ConfigError(
      `--resume: ${file.source} was written with another version of the model file ${modelFile.path} (SHA-256 ${
        file.meta.modelSha256?.slice(0, 16) ?? "not recorded"
      }…, now ${modelFile.sha256.slice(0, 16)}…); restore that file or start a new run`,
    );
  }
  if (differ.length > 0) {
    throw new ConfigError(
      `--resume: ${file.source} was written with other settings that change the trajectory: ${
        differ.map((k) =>
          k.startsWith("steps") ? k : `--${k} ${value(saved, k)} (now ${value(config, k)})`
        ).join(", ")
      }`,
    );
  }
}
