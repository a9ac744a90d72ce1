/**
 * A checkpoint folder belongs to one run: `run.json` in it names the run by the hash of its
 * trajectory settings, and holds those settings so that a refusal can say what differs. A run
 * writes checkpoints only into a folder that is new, empty of checkpoints, or its own (a
 * resumed run has the same hash); rotation (`--keep`) counts and deletes only the files of
 * this run up to the step it just wrote, so it never deletes that file, nor a later one left
 * by an earlier session of the same run.
 *
 * @module
 */

import { join } from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "./files.ts";

/** The owner file's name in a checkpoint folder. */
export const OWNER_FILE = "run.json";
const OWNER_FORMAT = "wd-explr-checkpoint-dir/1";

/** The run that owns (or will own) a checkpoint folder. */
export interface DirOwner {
  /** `configHash` of the run's configuration. */
  configHash: string;
  /** The trajectory settings the hash covers (shown when another run is refused). */
  settings: Record<string, unknown>;
}

/** A checkpoint folder that this run may not write into: one line naming it and why. */
export class CheckpointDirError extends Error {}

const ownerSchema = z.object({
  format: z.literal(OWNER_FORMAT),
  config_hash: z.string(),
  settings: z.record(z.string(), z.unknown()),
});

const CHECKPOINT_NAME = /^step-(\d{9,})\.safetensors$/;

/** `DIR/step-000000123.safetensors`: the checkpoint after step 123 (the names sort by step). */
export function checkpointPath(dir: string, step: number): string {
  return join(dir, `step-${String(step).padStart(9, "0")}.safetensors`);
}

/** `DIR/diverged-step-….safetensors`: the state at a divergence, never picked by a resume. */
export function divergedPath(dir: string, step: number): string {
  return join(dir, `diverged-step-${String(step).padStart(9, "0")}.safetensors`);
}

/** The checkpoint files in `dir` with their steps, newest (highest step) first. */
async function stepFiles(dir: string): Promise<{ step: number; path: string }[]> {
  const found: { step: number; path: string }[] = [];
  for await (const e of Deno.readDir(dir)) {
    const m = e.isFile ? CHECKPOINT_NAME.exec(e.name) : null;
    if (m) found.push({ step: Number(m[1]), path: join(dir, e.name) });
  }
  return found.sort((a, b) => b.step - a.step);
}

/** The checkpoint files in `dir`, newest (highest step) first. */
export async function listCheckpoints(dir: string): Promise<string[]> {
  return (await stepFiles(dir)).map((f) => f.path);
}

/** The owner recorded in `dir`, null when there is none (a missing folder has none). */
async function readOwner(dir: string): Promise<DirOwner | null> {
  const path = join(dir, OWNER_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new CheckpointDirError(`--checkpoint-dir: cannot read ${path}: ${(e as Error).message}`);
  }
  let parsed;
  try {
    parsed = ownerSchema.parse(JSON.parse(text));
  } catch {
    throw new CheckpointDirError(
      `--checkpoint-dir: ${path} is not this tool's owner file (${OWNER_FORMAT}); ` +
        `the folder belongs to something else, choose another`,
    );
  }
  return { configHash: parsed.config_hash, settings: parsed.settings };
}

/** The settings in which two owners differ, as `--name saved (now value)`, at most three. */
function differences(saved: DirOwner, now: DirOwner): string {
  const keys = [...new Set([...Object.keys(saved.settings), ...Object.keys(now.settings)])];
  const shown = (v: unknown) => JSON.stringify(v) ?? "unset";
  const differ = keys.filter((k) => shown(saved.settings[k]) !== shown(now.settings[k]));
  const listed = differ.slice(0, 3).map((k) =>
    `--${k} ${shown(saved.settings[k])} (now ${shown(now.settings[k])})`
  );
  return listed.join(", ") + (differ.length > 3 ? `, and ${differ.length - 3} more` : "");
}

/**
 * Checks, before the run starts, that it may write checkpoints into `dir`: the folder is new,
 * holds no checkpoint, or is owned by a run with the same hash; a folder of checkpoints without
 * an owner file (an older version's) is accepted only when this run resumes from it
 * (`resumesFromDir`). Throws a one-line {@link CheckpointDirError} otherwise.
 */
export async function checkCheckpointDir(
  dir: string,
  owner: DirOwner,
  resumesFromDir: boolean,
): Promise<void> {
  const saved = await readOwner(dir);
  if (saved && saved.configHash !== owner.configHash) {
    throw new CheckpointDirError(
      `--checkpoint-dir: ${dir} holds the checkpoints of another run (${
        differences(saved, owner)
      }); choose another folder`,
    );
  }
  if (saved || resumesFromDir) return;
  const files = await stepFiles(dir).catch(() => []);
  if (files.length > 0) {
    throw new CheckpointDirError(
      `--checkpoint-dir: ${dir} holds checkpoints of no known run (${
        files[0].path.slice(dir.length + 1)
      }, no ${OWNER_FILE}); choose another folder, or resume them with --resume ${dir}`,
    );
  }
}

/** Writes the owner file into `dir` unless it is there (atomically; the folder must exist). */
export async function claimCheckpointDir(dir: string, owner: DirOwner): Promise<void> {
  if (await readOwner(dir)) return;
  const record = { format: OWNER_FORMAT, config_hash: owner.configHash, settings: owner.settings };
  await writeFileAtomic(join(dir, OWNER_FILE), JSON.stringify(record, null, 2) + "\n");
}

/**
 * Deletes this run's oldest checkpoints so that `keep` remain at or below `written` (the step
 * just written); a later step's file, left by an earlier session, is neither counted nor
 * deleted, and neither is the file just written.
 */
export async function rotateCheckpoints(dir: string, written: number, keep: number) {
  const mine = (await stepFiles(dir)).filter((f) => f.step <= written);
  for (const old of mine.slice(Math.max(1, keep))) await Deno.remove(old.path);
}
