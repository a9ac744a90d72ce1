/**
 * Output paths checked at startup, before any data is loaded or the GPU is touched, so that a
 * bad `--summary` (or any other output flag) stops the run at once instead of after training.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { ConfigError } from "./config.ts";

/**
 * Checks that `path` (the value of `flag`) can be written: its folder exists, is a folder and
 * lets us create a file (a probe file `.<name>.probe-<random>` is created and removed), and the
 * path itself is not a folder. Throws a one-line {@link ConfigError}, for example
 * `--summary: cannot write /no/dir/s.json: folder does not exist`; Deno's permission errors are
 * reworded, so the message never suggests `--allow-all`.
 */
export async function checkOutputPath(flag: string, path: string): Promise<void> {
  const fail = (problem: string): never => {
    throw new ConfigError(`${flag}: cannot write ${path}: ${problem}`);
  };
  if (path.endsWith("/")) fail("it is a folder name (ends in /)");
  const dir = dirname(path);
  let folder: Deno.FileInfo | undefined;
  try {
    folder = await Deno.stat(dir);
  } catch (e) {
    fail(e instanceof Deno.errors.NotFound ? "folder does not exist" : reason(e, dir));
  }
  if (!folder!.isDirectory) fail(`${dir} is not a folder`);
  try {
    if ((await Deno.stat(path)).isDirectory) fail("it is a folder");
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    if (!(e instanceof Deno.errors.NotFound)) fail(reason(e, dir));
  }
  const probe = join(dir, `.${basename(path)}.probe-${crypto.randomUUID().slice(0, 8)}`);
  try {
    (await Deno.open(probe, { write: true, createNew: true })).close();
  } catch (e) {
    fail(reason(e, dir));
  }
  await Deno.remove(probe).catch(() => {});
}

/** Why `dir` cannot be written, in our words: Deno's permission messages name its flags. */
function reason(e: unknown, dir: string): string {
  if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
    return `not allowed to write in ${dir}`;
  }
  if (e instanceof Deno.errors.NotADirectory) return "folder does not exist";
  // "Read-only file system (os error 30): open '...'" -> "Read-only file system"
  const text = e instanceof Error ? e.message : String(e);
  return `cannot create a file in ${dir}: ${text.replace(/\s*\(os error \d+\)[^]*$/, "")}`;
}
