/**
 * The runner of the bad-inputs table (tests/bad_inputs_test.ts): each case runs as a subprocess
 * of `deno task train`, `report` or `sweep` (the task's own permission flags, read from
 * deno.json) in a folder of its own, with a time limit; every file in that folder is hashed
 * before and after, and the result is checked against the case's expectation. Cases run in
 * parallel, the ones that train first so that they overlap with the quick ones.
 *
 * @module
 */

import { join } from "node:path";
import { bytesOf, type Content } from "./fixtures.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** The three commands of the tool. */
export type Command = "train" | "report" | "sweep";

/** What a case expects. */
export interface Expect {
  /** The exit code, or the codes any one of which is right (a fix may refuse or warn). */
  code: number | readonly number[];
  /** stderr's last non-empty line. */
  last?: RegExp;
  /** Some line of stderr (a warning earlier than the last line). */
  stderr?: RegExp;
}

/** What a process did. */
export interface Result {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** The exit code and stderr of the process piped into this one, if any. */
  upstream?: { code: number; stderr: string };
}

/** Files every case may copy into its folder: made once by real runs of the tool. */
export interface Fixtures {
  /** The folder holding them. */
  dir: string;
  /** A checkpoint after step 1 of {@link FIXTURE_TRAIN}: `ck/step-000000001.safetensors`. */
  checkpoint: string;
  /** `--save-init` of {@link FIXTURE_TRAIN}'s model (mlp 784-8-10). */
  weights: string;
  /** That run's CSV rows and `--summary` JSON. */
  csv: string;
  summary: string;
  /** A sweep folder (`--grid seed=0,1`) and one of its complete configs. */
  sweep: string;
  config: Record<string, unknown>;
}

/** One bad input. */
export interface Case {
  name: string;
  cmd: Command;
  /** Arguments; `$DIR` is the case's folder (also the working directory). */
  args: string[];
  /** Writes the case's input files into its folder before the "before" hashes are taken. */
  setup?: (dir: string, fx: Fixtures) => Promise<void>;
  stdin?: Content;
  env?: Record<string, string>;
  /** Redirect stdout to this path (through `sh -c 'exec … > PATH'`), e.g. /dev/full. */
  stdoutTo?: string;
  /** Close stdout after this many lines, as `| head -n N` does. */
  closeAfter?: number;
  /** A process whose stdout is this case's stdin (`train … | report …`). */
  pipeFrom?: { cmd: Command; args: string[] };
  expect: Expect;
  /** Paths (relative to the case's folder) the case may create or change. */
  creates?: RegExp;
  /** stdout may carry whole rows: the run failed after writing some (divergence). */
  rows?: boolean;
  /** Further checks once the process ended; returns a problem, or undefined. */
  verify?: (dir: string, r: Result) => Promise<string | undefined>;
  /** Run this many times at once: the last line must be the same every time. */
  repeat?: number;
  /** The case trains on the GPU (a few steps): it is started early. */
  trains?: boolean;
  /** Why the case does not pass yet: it is run and reported, but does not fail the test. */
  pending?: string;
}

/** A case's outcome: what happened, and every way it missed its expectation. */
export interface Outcome {
  case: Case;
  result: Result;
  problems: string[];
  seconds: number;
}

/** Per command: the script and the permission flags its deno.json task passes. */
async function commands(): Promise<Record<Command, { script: string; flags: string[] }>> {
  const tasks = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))).tasks;
  const of = (task: string, script: string) => {
    const words = (tasks[task] as string).split(/\s+/);
    if (!words.includes(script)) throw new Error(`deno.json task ${task} does not run ${script}`);
    return { script: join(ROOT, script), flags: words.filter((w) => w.startsWith("--allow")) };
  };
  return {
    train: of("train", "main.ts"),
    report: of("report", "report/main.ts"),
    sweep: of("sweep", "report/sweep.ts"),
  };
}

const ENV = { XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1" };
const decoder = new TextDecoder();

/** The argv of `cmd` with `args`, `$DIR` replaced. */
function argvOf(
  cmds: Awaited<ReturnType<typeof commands>>,
  cmd: Command,
  args: string[],
  dir: string,
): string[] {
  const { script, flags } = cmds[cmd];
  return [Deno.execPath(), "run", ...flags, script, ...args.map((a) => a.replaceAll("$DIR", dir))];
}

/** Runs one process of case `c` in `dir`; kills it (and its upstream) after `limitMs`. */
async function runOnce(
  cmds: Awaited<ReturnType<typeof commands>>,
  c: Case,
  dir: string,
  limitMs: number,
): Promise<Result> {
  let argv = argvOf(cmds, c.cmd, c.args, dir);
  if (c.stdoutTo) argv = ["/bin/sh", "-c", `exec "$@" > ${c.stdoutTo}`, "sh", ...argv];
  const piped = c.stdin !== undefined || c.pipeFrom !== undefined;
  const env = { ...ENV, ...c.env };
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: dir,
    env,
    stdin: piped ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const upstream = c.pipeFrom &&
    new Deno.Command(Deno.execPath(), {
      args: argvOf(cmds, c.pipeFrom.cmd, c.pipeFrom.args, dir).slice(1),
      cwd: dir,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    for (const p of [child, upstream]) {
      try {
        p?.kill("SIGKILL");
      } catch { /* already gone */ }
    }
  }, limitMs);
  const upstreamErr = upstream ? new Response(upstream.stderr).text() : Promise.resolve("");
  // The child may exit before reading its stdin: a closed pipe there is its business.
  const feeding = upstream
    ? upstream.stdout.pipeTo(child.stdin).catch(() => {})
    : c.stdin !== undefined
    ? (async () => {
      const w = child.stdin.getWriter();
      await w.write(bytesOf(c.stdin!)).catch(() => {});
      await w.close().catch(() => {});
    })()
    : Promise.resolve();
  const stderr = new Response(child.stderr).text();
  const stdout = readStdout(child.stdout, c.closeAfter);
  const status = await child.status;
  const [out, err] = await Promise.all([stdout, stderr, feeding]);
  const up = upstream
    ? { code: (await upstream.status).code, stderr: await upstreamErr }
    : undefined;
  clearTimeout(timer);
  return { code: status.code, stdout: out, stderr: err, timedOut, upstream: up };
}

/** stdout as text; with `lines`, the pipe is closed once that many lines came (`| head`). */
async function readStdout(stream: ReadableStream<Uint8Array>, lines?: number): Promise<string> {
  if (lines === undefined) return await new Response(stream).text();
  const reader = stream.getReader();
  let text = "";
  while (text.split("\n").length <= lines) {
    const { value, done } = await reader.read();
    if (done) return text;
    text += decoder.decode(value, { stream: true });
  }
  await reader.cancel();
  return text;
}

/** SHA-256 of `bytes` in hex. */
async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Every entry under `dir` (relative path, folders with a trailing /) and its hash or kind. */
export async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    const entries = [];
    for await (const e of Deno.readDir(join(dir, rel))) entries.push(e);
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name, path = join(dir, r);
      if (e.isSymlink) out.set(r, `link to ${await Deno.readLink(path)}`);
      else if (e.isDirectory) {
        out.set(`${r}/`, "folder");
        await walk(r);
      } else if (e.isFile) out.set(r, await sha256(await Deno.readFile(path)));
      else out.set(r, "special file");
    }
  };
  await walk("");
  return out;
}

/** How `after` differs from `before`, leaving out created or changed paths `creates` admits. */
export function changes(
  before: Map<string, string>,
  after: Map<string, string>,
  creates?: RegExp,
): string[] {
  const found: string[] = [];
  for (const [path, hash] of before) {
    const now = after.get(path);
    if (now === undefined) found.push(`removed ${path}`);
    else if (now !== hash && !creates?.test(path)) found.push(`changed ${path}`);
  }
  for (const path of after.keys()) {
    if (!before.has(path) && !creates?.test(path)) found.push(`created ${path}`);
  }
  return found;
}

const ESC = String.fromCharCode(27);
const lastLine = (text: string) => text.split("\n").filter((l) => l.trim() !== "").at(-1) ?? "";

/** Every way `r` misses case `c`'s expectation (the file changes are checked apart). */
export function judge(c: Case, r: Result): string[] {
  const problems: string[] = [];
  const codes = typeof c.expect.code === "number" ? [c.expect.code] : c.expect.code;
  if (r.timedOut) problems.push("timed out");
  if (!codes.includes(r.code)) problems.push(`exit ${r.code}, expected ${codes.join(" or ")}`);
  const last = lastLine(r.stderr);
  if (c.expect.last && !c.expect.last.test(last)) {
    problems.push(`last line ${JSON.stringify(last)} does not match ${c.expect.last}`);
  }
  const lines = r.stderr.split("\n");
  if (c.expect.stderr && !lines.some((l) => c.expect.stderr!.test(l))) {
    problems.push(`no stderr line matches ${c.expect.stderr}`);
  }
  if (r.code !== 0) {
    const errors = lines.filter((l) => l.startsWith("error:"));
    if (!last.startsWith("error: ")) problems.push("the last line is not an error: line");
    if (errors.length !== 1) problems.push(`${errors.length} error: lines, expected 1`);
    if (!c.rows && r.stdout !== "") {
      problems.push(`stdout is not empty: ${JSON.stringify(r.stdout.slice(0, 120))}`);
    }
    if (c.rows && r.stdout !== "" && !r.stdout.endsWith("\n")) {
      problems.push("stdout ends in a partial row");
    }
  }
  // A stack trace or a terminal colour code is not a message a user can read.
  if (lines.some((l) => /^\s+at |Uncaught/.test(l) || l.includes(ESC))) {
    problems.push("stderr holds a stack trace or colour codes");
  }
  return problems;
}

/** Runs case `c` in a new folder under `root`: setup, hashes, the process(es), checks. */
export async function runCase(
  c: Case,
  root: string,
  index: number,
  fx: Fixtures,
  limitMs: number,
): Promise<Outcome> {
  const cmds = await commandsOnce();
  const dir = join(root, String(index).padStart(3, "0"));
  await Deno.mkdir(dir);
  const started = performance.now();
  await c.setup?.(dir, fx);
  const before = await snapshot(dir);
  const runs = await Promise.all(
    Array.from({ length: c.repeat ?? 1 }, () => runOnce(cmds, c, dir, limitMs)),
  );
  const result = runs[0];
  const problems = judge(c, result);
  const lasts = new Set(runs.map((r) => lastLine(r.stderr)));
  if (lasts.size > 1) {
    problems.push(`the last line differs between runs: ${[...lasts].join(" | ")}`);
  }
  problems.push(...changes(before, await snapshot(dir), c.creates));
  const extra = await c.verify?.(dir, result);
  if (extra) problems.push(extra);
  return { case: c, result, problems, seconds: (performance.now() - started) / 1000 };
}

let cached: ReturnType<typeof commands> | undefined;
const commandsOnce = () => cached ??= commands();

/** Runs `fn` over `items` with at most `n` at a time; results in the items' order. */
export async function pool<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/** The tiny training every fixture comes from (mlp 784-8-10, runs A and B, 2 steps). */
export const FIXTURE_TRAIN = [
  ...["--hidden", "8", "--batch-size", "16", "--probe", "8", "--runs", "A,B"],
  ...["--steps", "2", "--eval-every", "0", "--quiet"],
];

/** Runs the tool once in `dir` (as a case would, without checks), for fixtures and verifiers. */
export async function runTool(cmd: Command, args: string[], dir: string): Promise<Result> {
  const c: Case = { name: cmd, cmd, args, expect: { code: 0 } };
  return await runOnce(await commandsOnce(), c, dir, 120_000);
}

/** Runs the tool once for the fixtures; throws with its stderr when it fails. */
async function tool(cmd: Command, args: string[], dir: string): Promise<string> {
  const r = await runTool(cmd, args, dir);
  if (r.code !== 0) {
    throw new Error(`fixture ${cmd} ${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
  }
  return r.stdout;
}

/** Makes the shared fixtures in `dir` with real runs of the tool. */
export async function makeFixtures(dir: string): Promise<Fixtures> {
  const [csv] = await Promise.all([
    tool(
      "train",
      [...FIXTURE_TRAIN, "--checkpoint-dir", "ck", "--summary", "run.summary.json"],
      dir,
    ),
    tool("train", [...FIXTURE_TRAIN, "--save-init", "init.safetensors"], dir),
    tool("sweep", ["--grid", "seed=0,1", "--out", "sw"], dir),
  ]);
  await Deno.writeTextFile(join(dir, "run.csv"), csv);
  return {
    dir,
    checkpoint: join(dir, "ck", "step-000000001.safetensors"),
    weights: join(dir, "init.safetensors"),
    csv: join(dir, "run.csv"),
    summary: join(dir, "run.summary.json"),
    sweep: join(dir, "sw"),
    config: JSON.parse(await Deno.readTextFile(join(dir, "sw", "0.json"))),
  };
}
