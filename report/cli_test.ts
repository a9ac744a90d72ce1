/**
 * The report and sweep commands as a user meets them, run as subprocesses: a bad input or flag
 * is one `error:` line on stderr, exit code 1, nothing on stdout and no output file (not even a
 * temporary one); good input writes the page (stdin too) and says so on stderr only.
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { defaultConfig } from "../pipeline/config.ts";
import { syntheticCsv, withDir } from "./test_fixtures.ts";

const REPORT = new URL("./main.ts", import.meta.url).pathname;
const SWEEP = new URL("./sweep.ts", import.meta.url).pathname;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** `script` started in `cwd` with `args`, its stdin a pipe to write to. */
function spawn(script: string, args: string[], cwd: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env", script, ...args],
    cwd,
    env: { XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function run(script: string, args: string[], cwd: string, stdin = ""): Promise<Result> {
  const child = spawn(script, args, cwd);
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function assertOneLineError(r: Result, ...fragments: string[]): void {
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  if (r.code !== 1) throw new Error(`exit ${r.code}; stderr: ${r.stderr}`);
  if (lines.length !== 1 || !lines[0].startsWith("error: ")) throw new Error(`stderr: ${r.stderr}`);
  for (const f of fragments) {
    if (!lines[0].includes(f)) {
      throw new Error(`${JSON.stringify(lines[0])} lacks ${JSON.stringify(f)}`);
    }
  }
  if (r.stdout !== "") throw new Error(`stdout: ${r.stdout}`);
}

function assertEquals(a: unknown, b: unknown): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(`${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
  }
}

/** The names in `dir`, sorted. */
const ls = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

/** Every file under `dir` with its text, as one string to compare. */
function snapshot(dir: string): string {
  return ls(dir).map((n) => {
    const path = join(dir, n);
    const info = Deno.lstatSync(path);
    if (info.isDirectory) return `${n}/ ${snapshot(path)}`;
    return `${n}: ${
      info.isSymlink ? `-> ${Deno.readLinkSync(path)}` : Deno.readTextFileSync(path)
    }`;
  }).join("\n");
}

const GOOD = [...syntheticCsv({ rows: 60 })].join("");

Deno.test("report: each bad input is one error line, exit 1, and no output file", async () => {
  await withDir(async (dir) => {
    const bad: [string, string, string[]][] = [
      ["empty.csv", "", ["empty.csv: empty file"]],
      ["unknown.csv", "step,epoch,A.loss,A.lr,A.wat\n0,0,1,1,1\n", [`unknown column "A.wat"`]],
      ["missing.csv", "step,A.loss,A.lr\n0,1,1\n", ["missing column epoch"]],
      ["text.csv", GOOD.replace(/\n5,0,[^,]*,/, "\n5,0,oops,"), ["line 7", `not a number: "oops"`]],
      ["bad.jsonl", `{"step":0,"epoch":0,"A.loss":1,"A.lr":true}\n`, ["bad.jsonl: line 1", "A.lr"]],
    ];
    for (const [name, text, fragments] of bad) {
      Deno.writeTextFileSync(join(dir, name), text);
      assertOneLineError(await run(REPORT, [name, "-o", "out.html"], dir), ...fragments);
    }
    assertOneLineError(await run(REPORT, ["nope.csv"], dir), "nope.csv: cannot read: no such file");
    assertOneLineError(await run(REPORT, ["--bogus"], dir), "command line:", "--bogus");
    assertOneLineError(
      await run(REPORT, ["-o", "no/dir/r.html", "empty.csv"], dir),
      "-o: cannot write",
    );
    assertOneLineError(await run(REPORT, ["-"], dir, ""), "stdin: empty file");
    assertOneLineError(
      await run(REPORT, [], dir, "step,epoch\n"),
      "stdin: line 1",
      "missing columns A.loss, A.lr",
    );
    const left = ls(dir).filter((n) => !n.endsWith(".csv") && !n.endsWith(".jsonl"));
    if (left.length > 0) throw new Error(`left behind: ${left.join(", ")}`);
  });
});

Deno.test("report: stdin to the default report.html (or stdout with -o -); logs on stderr", async () => {
  await withDir(async (dir) => {
    const r = await run(REPORT, [], dir, GOOD);
    if (r.code !== 0 || r.stdout !== "") throw new Error(`exit ${r.code}: ${r.stderr}${r.stdout}`);
    if (!/^report: report\.html, 10 plots, \d+ KiB/.test(r.stderr)) throw new Error(r.stderr);
    const html = Deno.readTextFileSync(join(dir, "report.html"));
    if (!html.startsWith("<!DOCTYPE html>") || !html.includes("wd-explr report: stdin")) {
      throw new Error("not the page");
    }
    const piped = await run(REPORT, ["-o", "-"], dir, GOOD);
    if (piped.code !== 0 || !piped.stdout.startsWith("<!DOCTYPE html>")) {
      throw new Error(piped.stderr);
    }
    const help = await run(REPORT, ["--help"], dir);
    if (help.code !== 0 || !help.stdout.includes("Usage: deno task report")) {
      throw new Error(help.stderr);
    }
  });
});

Deno.test("sweep: a bad grid writes nothing, not even the folder; a good one writes it", async () => {
  await withDir(async (dir) => {
    for (
      const [args, fragment] of [
        [["--grid", "lr=0.1,x"], `--grid lr=x: lr: expected a number, got "x"`],
        [["--grid", "seed=3..1"], "the range ends before it starts"],
        [["--grid", "lr=0.1", "--runs", "B,A"], "--runs: must start with A"],
        [["--grid", "lr=0.1", "--nope"], "--nope"],
      ] as const
    ) {
      assertOneLineError(await run(SWEEP, [...args, "--out", "sw"], dir), fragment);
      if (ls(dir).length !== 0) throw new Error(`left behind: ${ls(dir)}`);
    }
    const r = await run(
      SWEEP,
      ["--grid", "lr=0.05,0.1 seed=0..1", "--steps", "5", "--out", "sw"],
      dir,
    );
    if (r.code !== 0 || r.stdout !== "") throw new Error(`exit ${r.code}: ${r.stderr}`);
    if (!r.stderr.includes("sweep: 4 points (lr 2 × seed 2)")) throw new Error(r.stderr);
    // The config names the point's summary and format: the run command needs neither.
    const command = "deno task train --config sw/$INDEX.json > sw/$INDEX.jsonl\n";
    if (!r.stderr.endsWith(command)) throw new Error(r.stderr);
    if (ls(join(dir, "sw")).length !== 5) throw new Error(`${ls(join(dir, "sw"))}`);
    assertOneLineError(await run(SWEEP, ["--grid", "lr=0.1", "--out", "sw"], dir), "is not empty");
  });
});

Deno.test("report of a sweep folder: one comparison page, results missing so far listed", async () => {
  await withDir(async (dir) => {
    const sweep = await run(SWEEP, ["--grid", "seed=0..2", "--out", "sw"], dir);
    if (sweep.code !== 0) throw new Error(sweep.stderr);
    Deno.writeTextFileSync(join(dir, "sw", "0.csv"), GOOD);
    Deno.writeTextFileSync(join(dir, "sw", "2.csv"), [...syntheticCsv({ rows: 80 })].join(""));
    const r = await run(REPORT, ["sw", "-o", "cmp.html"], dir);
    if (r.code !== 0) throw new Error(r.stderr);
    const html = Deno.readTextFileSync(join(dir, "cmp.html"));
    if (!html.includes("1 without a result file yet") || !html.includes("no result")) {
      throw new Error("the missing result is not listed");
    }
    // One onset plot for the one axis, the A–B and A–A1 curves.
    if (html.split('<figure class="plot"').length - 1 !== 3) throw new Error("not 3 plots");
  });
});

Deno.test("report: the output is never an input, by any name; the inputs stay as they were", async () => {
  await withDir(async (dir) => {
    Deno.writeTextFileSync(join(dir, "run.csv"), GOOD);
    Deno.writeTextFileSync(join(dir, "run.summary.json"), "{}");
    Deno.writeTextFileSync(join(dir, "s.json"), "{}");
    Deno.symlinkSync(join(dir, "run.csv"), join(dir, "link.html"));
    const sweep = await run(SWEEP, ["--grid", "seed=0..1", "--out", "sw"], dir);
    if (sweep.code !== 0) throw new Error(sweep.stderr);
    Deno.writeTextFileSync(join(dir, "sw", "1.csv"), GOOD);
    const before = snapshot(dir);
    const refused: [string[], string][] = [
      [["run.csv", "-o", "run.csv"], "run.csv is also an input (the result file)"],
      [["run.csv", "-o", "link.html"], "link.html is also an input (the result file run.csv)"],
      [
        ["run.csv", "--summary", "s.json", "-o", "s.json"],
        "s.json is also an input (the --summary file)",
      ],
      [
        ["run.csv", "-o", "run.summary.json"],
        "run.summary.json is also an input (the result's summary)",
      ],
      [
        ["-", "--summary", "s.json", "-o", "./s.json"],
        "./s.json is also an input (the --summary file s.json)",
      ],
      [["sw", "-o", "sw/manifest.json"], "sw/manifest.json is also an input (the manifest of sw)"],
      [["sw", "-o", "sw/0.json"], "sw/0.json is also an input (a sweep point's config)"],
      [["sw", "-o", "sw/1.csv"], "sw/1.csv is also an input (a result file)"],
    ];
    for (const [args, message] of refused) {
      const r = await run(REPORT, args, dir, GOOD);
      assertOneLineError(r, `error: -o: ${message}; choose another output`);
    }
    if (snapshot(dir) !== before) throw new Error("an input changed, or a file was left");
  });
});

Deno.test("report: piped, the summary is read at stdin's end, and must be of those rows", async () => {
  await withDir(async (dir) => {
    // More than a pipe holds: the write below ends only once the report has read most of it,
    // and a report that opened s.json at its start (it is not there yet) has failed by then.
    const text = [...syntheticCsv({ rows: 2000 })].join("");
    const sha256 = createHash("sha256").update(text).digest("hex");
    const rows = { format: "csv", count: 2000, first_step: 0, last_step: 1999, sha256 };
    const child = spawn(REPORT, ["--summary", "s.json"], dir);
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(text)).catch(() => {});
    // As the trainer does: the summary written before stdout closes.
    const summary = { steps: 2000, pairs: {}, final: {}, rows };
    Deno.writeTextFileSync(join(dir, "s.json"), JSON.stringify(summary));
    await writer.close().catch(() => {});
    const out = await child.output();
    const stderr = new TextDecoder().decode(out.stderr);
    if (out.code !== 0 || !stderr.startsWith("report: report.html")) throw new Error(stderr);
    // The same summary beside other rows: it is of another run.
    assertOneLineError(
      await run(REPORT, ["--summary", "s.json", "-o", "other.html"], dir, GOOD),
      `error: --summary s.json describes steps 0..1999 (2000 rows, sha256 ${
        sha256.slice(0, 12)
      }…), ` +
        "stdin holds steps 0..59: the summary is of another run",
    );
  });
});

Deno.test("report: results without a summary make no setting an axis, and are named", async () => {
  await withDir(async (dir) => {
    Deno.writeTextFileSync(join(dir, "a.csv"), GOOD);
    Deno.writeTextFileSync(join(dir, "b.csv"), GOOD);
    const summary = { steps: 60, pairs: {}, final: {}, config: defaultConfig() };
    Deno.writeTextFileSync(join(dir, "a.summary.json"), JSON.stringify(summary));
    const r = await run(REPORT, ["a.csv", "b.csv", "-o", "cmp.html"], dir);
    if (r.code !== 0) throw new Error(r.stderr);
    const log = "report: no summary with settings for b.csv: only settings known for every " +
      "result are compared, so none is an axis\n";
    if (!r.stderr.startsWith(log)) throw new Error(r.stderr);
    const html = Deno.readTextFileSync(join(dir, "cmp.html"));
    if (html.includes("; axes ")) throw new Error("settings known for one result became axes");
  });
});

/** `script` run in `cwd` with its stdout sent to `path` by the shell (`> /dev/full`). */
async function runTo(script: string, args: string[], cwd: string, path: string): Promise<Result> {
  const deno = [Deno.execPath(), "run", "--allow-read", "--allow-write", "--allow-env", script];
  const out = await new Deno.Command("/bin/sh", {
    args: ["-c", `exec "$@" > ${path}`, "sh", ...deno, ...args],
    cwd,
    env: { XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("report: -o a device is refused in one line that points to -o -", async () => {
  await withDir(async (dir) => {
    Deno.writeTextFileSync(join(dir, "run.csv"), GOOD);
    // /dev/full and /dev/stdout Deno opens only with --allow-all; /dev/zero it would open.
    for (const device of ["/dev/full", "/dev/stdout", "/dev/zero"]) {
      const r = await run(REPORT, ["run.csv", "-o", device], dir);
      assertOneLineError(
        r,
        `error: -o: ${device} is a device; this program writes only files, /dev/null and ` +
          "/dev/stderr (use -o - for stdout)",
      );
    }
    assertEquals(ls(dir), ["run.csv"]);
  });
});

Deno.test("report: -o /dev/null checks the inputs and writes nothing", async () => {
  await withDir(async (dir) => {
    Deno.writeTextFileSync(join(dir, "run.csv"), GOOD);
    const r = await run(REPORT, ["run.csv", "-o", "/dev/null"], dir);
    if (r.code !== 0 || r.stdout !== "" || !r.stderr.startsWith("report: /dev/null, 10 plots")) {
      throw new Error(`exit ${r.code}: ${r.stderr}`);
    }
    Deno.writeTextFileSync(join(dir, "bad.csv"), "step,epoch,A.loss,A.lr\n,0,1,0.1\n");
    assertOneLineError(
      await run(REPORT, ["bad.csv", "-o", "/dev/null"], dir),
      "error: bad.csv: line 2: column step: empty cell",
    );
    assertEquals(ls(dir), ["bad.csv", "run.csv"]);
  });
});

Deno.test("report: -o a named pipe (mkfifo) writes the page into it, in place", async () => {
  await withDir(async (dir) => {
    Deno.writeTextFileSync(join(dir, "run.csv"), GOOD);
    const fifo = join(dir, "page");
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    if (!made.success) throw new Error("mkfifo failed");
    // The reader is a process of its own, to be killed if the report never opens the pipe.
    const reader = new Deno.Command("cat", { args: [fifo], stdout: "piped" }).spawn();
    const read = reader.output();
    const r = await run(REPORT, ["run.csv", "-o", "page"], dir);
    // A report that exited without opening the pipe leaves the reader waiting for a writer.
    const timer = setTimeout(() => reader.kill(), r.code === 0 ? 10_000 : 0);
    const page = new TextDecoder().decode((await read).stdout);
    clearTimeout(timer);
    if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
    if (!page.startsWith("<!DOCTYPE html>") || !page.trimEnd().endsWith("</html>")) {
      throw new Error(`not the page: ${page.slice(0, 80)}`);
    }
    // Still the pipe (a rename would have put a regular file in its place), nothing else left.
    if (!Deno.lstatSync(fifo).isFifo) throw new Error("the pipe was replaced");
    assertEquals(ls(dir), ["page", "run.csv"]);
  });
});

Deno.test("report: -o - with stdout full (> /dev/full) is one line naming stdout", async () => {
  await withDir(async (dir) => {
    Deno.writeTextFileSync(join(dir, "run.csv"), GOOD);
    const r = await runTo(REPORT, ["run.csv", "-o", "-"], dir, "/dev/full");
    assertOneLineError(r, "error: stdout: cannot write the page: No space left on device");
    if (r.stderr.includes("os error")) throw new Error(r.stderr);
    assertEquals(ls(dir), ["run.csv"]);
  });
});

Deno.test("sweep: --out in a missing folder, or under a file, names that folder", async () => {
  await withDir(async (dir) => {
    assertOneLineError(
      await run(SWEEP, ["--grid", "lr=0.1", "--out", "no/sw"], dir),
      "error: --out: cannot create no/sw: folder no does not exist",
    );
    Deno.writeTextFileSync(join(dir, "f"), "mine");
    assertOneLineError(
      await run(SWEEP, ["--grid", "lr=0.1", "--out", "f/sw"], dir),
      "error: --out: cannot create f/sw: f is not a folder",
    );
    // No temporary folder left, nor named.
    assertEquals(ls(dir), ["f"]);
  });
});

Deno.test("sweep: --out where Deno may not write (/proc) names no Deno flag", async () => {
  await withDir(async (dir) => {
    const r = await run(SWEEP, ["--grid", "lr=0.1", "--out", "/proc/sw"], dir);
    assertOneLineError(r, "error: --out: cannot write /proc/sw: not allowed to write in /proc");
    if (r.stderr.includes("--allow")) throw new Error(r.stderr);
  });
});

Deno.test("sweep: --out DIR/ (a folder name ending in /) is written", async () => {
  await withDir(async (dir) => {
    const r = await run(SWEEP, ["--grid", "lr=0.1", "--out", "sw/"], dir);
    if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
    assertEquals(ls(dir), ["sw"]);
    assertEquals(ls(join(dir, "sw")), ["0.json", "manifest.json"]);
  });
});
