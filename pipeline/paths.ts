/**
 * Output paths checked at startup, before any data is loaded or the GPU is touched, so that a
 * bad `--summary` (or any other output flag) stops the run at once instead of after training,
 * and no output can overwrite an input or another output.
 *
 * @module
 */

import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { type Config, ConfigError } from "./config.ts";
import { OUTPUT_DEVICES } from "../stages/files.ts";

/**
 * Checks that `path` (the value of `flag`) can be written: its folder exists, is a folder and
 * lets us create a file (a probe file `.<name>.probe-<random>` is created and removed), and the
 * path itself is not a folder; of the devices only `OUTPUT_DEVICES` (`/dev/null`,
 * `/dev/stderr`). Throws a one-line {@link ConfigError}, for example
 * `--summary: cannot write /no/dir/s.json: folder does not exist`; Deno's permission errors are
 * reworded, so the message never suggests `--allow-all`.
 */
export async function checkOutputPath(flag: string, path: string): Promise<void> {
  const fail = (problem: string): never => {
    throw new ConfigError(`${flag}: cannot write ${path}: ${problem}`);
  };
  if (OUTPUT_DEVICES.has(path)) return;
  if (path === "/dev/stdout" || path === "/dev/fd/1") fail("stdout carries the rows");
  if (path.startsWith("/dev/")) {
    fail(`a device; outputs are files, ${[...OUTPUT_DEVICES].join(" or ")}`);
  }
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

/** One file or folder a run reads or writes, named as the user gave it. */
interface NamedPath {
  /** The flag (or what the path is), e.g. `--summary`, `--data`. */
  flag: string;
  path: string;
}

/** Where `path` is once links are resolved: itself if it exists, else its resolved folder's. */
async function resolved(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    try {
      return join(await Deno.realPath(dirname(path)), basename(path));
    } catch {
      return resolve(path);
    }
  }
}

/** The (device, inode) of an existing file: hard links to one file share it. */
async function identity(path: string): Promise<string | null> {
  const info = await Deno.stat(path).catch(() => null);
  return info?.ino != null ? `${info.dev}:${info.ino}` : null;
}

/**
 * True when `a` and `b` are one file (or folder): one path once symbolic links, `./` and `..`
 * are resolved (a file not written yet: its resolved folder and its name), or one inode (hard
 * links).
 */
export async function sameFile(a: string, b: string): Promise<boolean> {
  if (await resolved(a) === await resolved(b)) return true;
  const [ia, ib] = [await identity(a), await identity(b)];
  return ia !== null && ia === ib;
}

/** True when `path` lies inside the folder `dir` (after links). */
async function inside(path: string, dir: string): Promise<boolean> {
  const rel = relative(await resolved(dir), await resolved(path));
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
}

/** True when `path` is the folder `dir` or lies inside it (after links). */
export async function sameOrInside(path: string, dir: string): Promise<boolean> {
  return await sameFile(path, dir) || await inside(path, dir);
}

/** Names the checkpoint stage writes in its folder (checkpoints, their owner file). */
const CHECKPOINT_OUTPUT = /^((diverged-)?step-\d+\.safetensors|run\.json)$/;

/**
 * Checks that no output can overwrite an input or another output: `--summary` and
 * `--save-init` are neither an input file (the data, `--config`, `--resume`, `--init-from`)
 * nor in the data folder (the next run would read them as data), nor each other nor a name the
 * checkpoint folder uses; `--checkpoint-dir` is not the data
 * folder; `--init-from` is not a checkpoint that rotation may delete. Paths are compared after
 * resolving links (and hard links by inode). Throws one {@link ConfigError} line naming both.
 */
export async function checkOutputsApart(
  config: Config,
  configFile: string | undefined,
  dataPath: string | undefined,
): Promise<void> {
  const inputs: NamedPath[] = [
    ...(dataPath ? [{ flag: "--data", path: dataPath }] : []),
    ...(configFile ? [{ flag: "--config", path: configFile }] : []),
    ...(config.resume ? [{ flag: "--resume", path: config.resume }] : []),
    ...(config["init-from"] ? [{ flag: "--init-from", path: config["init-from"] }] : []),
  ];
  const files: NamedPath[] = [
    ...(config.summary ? [{ flag: "--summary", path: config.summary }] : []),
    ...(config["save-init"] ? [{ flag: "--save-init", path: config["save-init"] }] : []),
  ];
  const dir = config["checkpoint-dir"];
  const clash = (out: NamedPath, other: NamedPath, what: string): never => {
    throw new ConfigError(
      `${out.flag}: ${out.path} ${what} (${other.flag} ${other.path}); choose another path`,
    );
  };
  for (const [i, out] of files.entries()) {
    for (const input of inputs) {
      if (await sameFile(out.path, input.path)) clash(out, input, "is also an input");
      if (input.flag === "--data" && await inside(out.path, input.path)) {
        clash(out, input, "lies inside the data folder");
      }
    }
    for (const other of files.slice(i + 1)) {
      if (await sameFile(out.path, other.path)) clash(out, other, "is also another output");
    }
    if (
      dir && CHECKPOINT_OUTPUT.test(basename(out.path)) && await sameFile(dirname(out.path), dir)
    ) {
      clash(out, { flag: "--checkpoint-dir", path: dir }, "is a name the checkpoint folder uses");
    }
  }
  if (!dir) return;
  const folder = { flag: "--checkpoint-dir", path: dir };
  for (const input of inputs) {
    if (input.flag === "--data" && await sameFile(dir, input.path)) {
      clash(folder, input, "is the data folder");
    }
    if (
      input.flag === "--init-from" && CHECKPOINT_OUTPUT.test(basename(input.path)) &&
      await sameFile(dirname(input.path), dir)
    ) {
      clash(input, folder, "may be deleted by the checkpoint rotation");
    }
  }
}
