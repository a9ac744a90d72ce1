/**
 * Checkpoint folder ownership and rotation: another run's folder is refused before anything is
 * written, rotation never deletes the file just written nor a later one, and an older
 * version's folder (no owner file) is taken only by a run that resumes from it.
 */

import { join } from "node:path";
import {
  checkCheckpointDir,
  CheckpointDirError,
  checkpointPath,
  claimCheckpointDir,
  listCheckpoints,
  OWNER_FILE,
  rotateCheckpoints,
} from "./checkpoint_dir.ts";
import { assertEquals } from "./data/test_fixtures.ts";

const mine = { configHash: "aaaaaaaaaaaaaaaa", settings: { lr: 0.1, seed: 0 } };
const theirs = { configHash: "bbbbbbbbbbbbbbbb", settings: { lr: 0.2, seed: 0 } };

/** Creates empty checkpoint files of `steps` in a new folder. */
async function folderWith(steps: number[]): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const s of steps) await Deno.writeFile(checkpointPath(dir, s), new Uint8Array([s]));
  return dir;
}

/** The error `body` throws, or a failure when it throws none. */
async function refusal(body: () => Promise<unknown>): Promise<string> {
  try {
    await body();
  } catch (e) {
    if (!(e instanceof CheckpointDirError)) throw e;
    return e.message;
  }
  throw new Error("not refused");
}

Deno.test("checkpoint folder: another run's folder is refused naming the settings that differ", async () => {
  const dir = await folderWith([4]);
  await claimCheckpointDir(dir, theirs);
  const message = await refusal(() => checkCheckpointDir(dir, mine, false));
  assertEquals(
    message,
    `--checkpoint-dir: ${dir} holds the checkpoints of another run (--lr 0.2 (now 0.1)); ` +
      `choose another folder`,
  );
  await checkCheckpointDir(dir, theirs, false); // its own run (a resume) may write on
  await Deno.remove(dir, { recursive: true });
});

Deno.test("checkpoint folder: checkpoints without an owner are taken only when resumed from", async () => {
  const dir = await folderWith([99]);
  const message = await refusal(() => checkCheckpointDir(dir, mine, false));
  if (!message.includes("step-000000099.safetensors, no run.json")) throw new Error(message);
  await checkCheckpointDir(dir, mine, true);
  const empty = await Deno.makeTempDir();
  await checkCheckpointDir(empty, mine, false);
  await checkCheckpointDir(join(empty, "new"), mine, false); // created later by the run
  await Deno.writeTextFile(join(empty, OWNER_FILE), "{}");
  const foreign = await refusal(() => checkCheckpointDir(empty, mine, false));
  if (!foreign.includes("is not this tool's owner file")) throw new Error(foreign);
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(empty, { recursive: true });
});

Deno.test("checkpoint rotation: a later step's file is kept and never counted; the new file stays", async () => {
  // step 99 from an earlier session of the same run, this session wrote 3 and then 5.
  const dir = await folderWith([1, 3, 5, 99]);
  await rotateCheckpoints(dir, 5, 1);
  assertEquals(await listCheckpoints(dir), [checkpointPath(dir, 99), checkpointPath(dir, 5)]);
  await rotateCheckpoints(dir, 5, 0); // keep 0 is not a setting, but the new file stays anyway
  assertEquals((await listCheckpoints(dir)).length, 2);
  await Deno.remove(dir, { recursive: true });
});
