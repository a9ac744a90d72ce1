/**
 * The report and sweep commands as a user meets them, run as subprocesses: a bad input or flag
 * is one `error:` line on stderr, exit code 1, nothing on stdout and no output file (not even a
 * temporary one); good input writes the page (stdin too) and says so on stderr only.
 */

import { join } from "node:path";
import { syntheticCsv } from "./test_fixtures.ts";

const REPORT = new URL("./main.ts", import.meta.url).pathname;
const SWEEP = new URL("./sweep.ts", import.meta.url).pathname;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(script: string, args: string[], cwd: string, stdin = ""): Promise<Result> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env", script, ...args],
    cwd,
    env: { XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
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

/** The names in `dir`, sorted. */
const ls = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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
