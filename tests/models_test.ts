/**
 * Model files as a user meets them, through the command line: every shipped example in
 * models/ trains for 3 steps and is inspected; files that do not parse, throw or build an
 * invalid graph, a model whose group S is empty and a weight wrongly marked S are each refused
 * with one line naming the file; a resume with a changed model file is refused.
 */

import { GPU_PERMISSIONS } from "../shaders/webgpu.ts";
import { assertOneLineError, type MainResult, runMain } from "./fixtures/main_cli.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const opts = { sanitizeResources: false, sanitizeOps: false };

/** Runs `main.ts ...args` from the repository root with the GPU's permissions. */
const cli = (args: string[]): Promise<MainResult> =>
  runMain(args, { permissions: GPU_PERMISSIONS, cwd: ROOT });

function check(ok: boolean, what: string, r?: MainResult): void {
  if (!ok) throw new Error(r ? `${what}\nexit ${r.code}; stderr:\n${r.stderr}` : what);
}

/** The shipped examples. */
async function examples(): Promise<string[]> {
  const files: string[] = [];
  for await (const e of Deno.readDir(`${ROOT}models`)) {
    if (e.name.endsWith(".ts")) files.push(`models/${e.name}`);
  }
  return files.sort();
}

/**
 * A small and fast training run: 3 steps of runs A and B on 4 examples, a probe of 4, 16 held
 * out and no eval-mode probe (WRN-16-4's full held-out evaluation alone takes minutes here).
 */
const SMALL = [
  ...["--steps", "3", "--runs", "A,B", "--batch-size", "4", "--probe", "4"],
  ...["--heldout", "16", "--eval-every", "0", "--quiet"],
];

Deno.test({
  ...opts,
  name: "every model in models/ trains for 3 steps and is inspected (S/O table, check passed)",
  async fn() {
    const files = await examples();
    check(files.length >= 4, `only ${files.length} examples`);
    for (const file of files) {
      const r = await cli(["--model", file, ...SMALL]);
      check(r.code === 0, `${file}: training failed`, r);
      const lines = r.stdout.trim().split("\n");
      check(lines.length === 4, `${file}: ${lines.length - 1} rows, expected 3`, r);
      check(!/nan/i.test(lines.slice(1).join()), `${file}: NaN in the rows`, r);
      const i = await cli(["inspect", "--model", file, "--batch-size", "4", "--probe", "4"]);
      check(i.code === 0, `${file}: inspect failed`, i);
      check(/\bS\b/.test(i.stdout) && /\bO\b/.test(i.stdout), `${file}: no S/O table`, i);
      check(/passed/.test(i.stdout) && !/failed/.test(i.stdout), `${file}: check not passed`, i);
    }
  },
});

/** Writes a model file with `body` in a temporary folder; returns its path. */
async function modelFile(dir: string, name: string, body: string): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, body);
  return path;
}

Deno.test({
  ...opts,
  name: "bad model files: one line naming the file (and line, node) for each",
  async fn() {
    const dir = await Deno.makeTempDir();
    const run = (path: string) => cli(["--model", path, ...SMALL]);
    const syntax = await modelFile(
      dir,
      "syntax.ts",
      "export function model(x) {\n  return x.(;\n}\n",
    );
    assertOneLineError(await run(syntax), 1, `${syntax}:2`, "cannot be loaded", "SyntaxError");
    const none = await modelFile(dir, "none.ts", "export const net = 1;\n");
    assertOneLineError(await run(none), 1, none, "exports no function named model", "net");
    const throws = await modelFile(
      dir,
      "throws.ts",
      'export function model(x, data) {\n  throw new Error("not yet written");\n}\n',
    );
    assertOneLineError(await run(throws), 1, `${throws}:2`, "the model threw: not yet written");
    const mismatch = await modelFile(
      dir,
      "mismatch.ts",
      [
        "export function model(x, data) {",
        "  const a = x.conv(8, 3).bn().relu();",
        "  const b = a.conv(8, 3, { stride: 2 }).bn();",
        "  return a.add(b).avgpool().linear(data.classes, { bias: true });",
        "}",
      ].join("\n"),
    );
    assertOneLineError(
      await run(mismatch),
      1,
      `${mismatch}:4`,
      "add0",
      "28x28x8",
      "14x14x8",
      "differ",
    );
    const wrongLogits = await modelFile(
      dir,
      "logits.ts",
      "export function model(x) {\n  return x.linear(16).bn();\n}\n",
    );
    assertOneLineError(await run(wrongLogits), 1, wrongLogits, "logits must be [10]");
    const missing = `${dir}/missing.ts`;
    assertOneLineError(await run(missing), 1, missing, "cannot read");
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  ...opts,
  name: "an empty group S and a weight wrongly marked S are refused with the reason",
  async fn() {
    const dir = await Deno.makeTempDir();
    const plain = await modelFile(
      dir,
      "plain.ts",
      "export function model(x, data) {\n  return x.linear(32).relu().linear(data.classes, { bias: true });\n}\n",
    );
    assertOneLineError(
      await cli(["--model", plain, ...SMALL]),
      1,
      "no scale-invariant weight",
      "run B would equal run A",
      "fc0",
    );
    const marked = await modelFile(
      dir,
      "marked.ts",
      'export function model(x, data) {\n  return x.linear(32).bn().relu().linear(data.classes, { bias: true, group: "S" });\n}\n',
    );
    assertOneLineError(await cli(["--model", marked, ...SMALL]), 1, "fc1", "marked S", "loss");
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  ...opts,
  name: "--resume with a changed model file is refused; with the same file it resumes",
  async fn() {
    const dir = await Deno.makeTempDir();
    const body = (width: number) =>
      `export function model(x, data) {\n  return x.linear(${width}).ln().relu().linear(data.classes, { bias: true });\n}\n`;
    const path = await modelFile(dir, "net.ts", body(16));
    const args = [
      "--model",
      path,
      "--batch-size",
      "8",
      "--probe",
      "8",
      "--heldout",
      "16",
      "--quiet",
    ];
    const first = await cli([...args, "--steps", "2", "--checkpoint-dir", `${dir}/ckpt`]);
    check(first.code === 0, "the first run failed", first);
    const again = await cli([...args, "--steps", "4", "--resume", `${dir}/ckpt`]);
    check(again.code === 0, "resuming with the same file failed", again);
    await Deno.writeTextFile(path, body(16) + "// edited\n");
    assertOneLineError(
      await cli([...args, "--steps", "4", "--resume", `${dir}/ckpt`]),
      1,
      "--resume",
      "another version of the model file",
    );
    await Deno.remove(dir, { recursive: true });
  },
});
