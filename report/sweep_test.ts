/**
 * Planning and writing a sweep: every point validated by the trainer's schema (a bad value,
 * an unknown setting, a bad combination: one error, nothing written), config files the trainer
 * reads back, a manifest the report reads back, a folder written whole.
 */

import { join } from "node:path";
import { parseCommandLine } from "../pipeline/config.ts";
import { parseManifest } from "./manifest.ts";
import { manifestOf, writeSweep } from "./sweep.ts";
import { planSweep, type SweepPlan } from "./sweep_plan.ts";

function assertEquals(a: unknown, b: unknown): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(`${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
  }
}

async function plan(args: string[]): Promise<SweepPlan> {
  const cmd = await planSweep(args);
  if (cmd.help) throw new Error("help");
  return cmd.plan;
}

async function assertFails(args: string[], fragment: string): Promise<void> {
  try {
    await planSweep(args);
  } catch (e) {
    const m = (e as Error).message;
    if (!m.includes(fragment)) throw new Error(`"${m}" lacks "${fragment}"`);
    if (m.includes("\n")) throw new Error(`not one line: ${m}`);
    return;
  }
  throw new Error(`accepted; expected ${fragment}`);
}

Deno.test("a grid's points carry typed, validated settings and the base flags", async () => {
  const p = await plan([
    "--grid",
    "lr=0.05,0.1 seed=0..2",
    "--steps",
    "40",
    "--out=x",
    "--runs",
    "A,B",
  ]);
  assertEquals(p.points.length, 6);
  assertEquals(p.points[4].settings, { lr: 0.1, seed: 1 });
  assertEquals([p.points[4].config.steps, p.points[4].config.runs], [40, ["A", "B"]]);
  assertEquals(p.base, ["--steps", "40", "--runs", "A,B"]);
  const lists = await plan(["--grid", "hidden=32;64,64", "--out", "x"]);
  assertEquals(lists.points.map((q) => q.settings.hidden), [[32], [64, 64]]);
  const m = manifestOf(p);
  assertEquals(m.axes, [{ name: "lr", values: [0.05, 0.1] }, { name: "seed", values: [0, 1, 2] }]);
  parseManifest(JSON.parse(JSON.stringify(m)), "manifest.json");
});

Deno.test("a point the trainer would refuse is refused, naming the axis or the point", async () => {
  await assertFails(
    ["--grid", "lr=0.1,abc", "--out", "x"],
    `--grid lr=abc: lr: expected a number, got "abc"`,
  );
  await assertFails(["--grid", "lr=-1", "--out", "x"], "--grid lr=-1: lr: expected a number > 0");
  await assertFails(["--grid", "nope=1", "--out", "x"], "--grid nope=1: nope: unknown setting");
  await assertFails(["--grid", "seed=0..1", "--wd", "x", "--out", "d"], "--wd: expected a number");
  await assertFails(
    ["--grid", "schedule=const,step explr=exact,closed", "--out", "x"],
    "--grid point 3 (schedule=step explr=closed): explr:",
  );
  await assertFails(["--grid", "lr=0.1..2", "--out", "x"], "a range a..b takes integers");
  await assertFails(["--out", "x"], "--grid: required");
  await assertFails(["--grid", "lr=0.1"], "--out: required");
  await assertFails(["--grid", "lr=0.1", "--out", "x", "--bogus"], "--bogus");
  await assertFails(["--grid", "lr=0.1", "--out", "x", "pos"], "pos");
});

Deno.test("the folder is written whole: configs the trainer reads, and the manifest", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = join(dir, "sweep");
    await writeSweep(await plan(["--grid", "wd=0,5e-3 seed=3..4", "--steps", "7", "--out", out]));
    const names = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    assertEquals(names, ["0.json", "1.json", "2.json", "3.json", "manifest.json"]);
    // The config alone says where the point writes: no --format or --summary to add.
    const cmd = await parseCommandLine(["--config", join(out, "3.json")]);
    if (cmd.help) throw new Error("help");
    const c = cmd.config;
    assertEquals([c.wd, c.seed, c.steps, c.format, c.summary], [
      5e-3,
      4,
      7,
      "jsonl",
      join(out, "3.summary.json"),
    ]);
    const m = parseManifest(JSON.parse(Deno.readTextFileSync(join(out, "manifest.json"))), "m");
    assertEquals(m.points[2], {
      index: 2,
      config: "2.json",
      settings: { wd: 5e-3, seed: 3 },
      outputs: { rows: "2.jsonl", summary: join(out, "2.summary.json"), checkpoint_dir: null },
    });
    // A folder that is not empty is refused, and left as it was.
    await writeSweep(await plan(["--grid", "seed=0", "--out", out])).then(
      () => Promise.reject(new Error("overwrote a sweep folder")),
      (e) =>
        assertEquals(
          (e as Error).message,
          `--out: ${out} is not empty (a sweep folder is written whole)`,
        ),
    );
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["sweep"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every point writes its own summary and checkpoints; a manifest lists them", async () => {
  const p = await plan(["--grid", "lr=0.1,0.2", "--checkpoint-dir", "ck", "--out", "sw"]);
  assertEquals(
    p.points.map((q) => [q.config["checkpoint-dir"], q.config.summary, q.config.format]),
    [["ck/0", "sw/0.summary.json", "jsonl"], ["ck/1", "sw/1.summary.json", "jsonl"]],
  );
  assertEquals(p.points[1].outputs, {
    rows: "1.jsonl",
    summary: "sw/1.summary.json",
    checkpoint_dir: "ck/1",
  });
  // An axis over the checkpoint folder: each point's folder is still its own.
  const axis = await plan(["--grid", "checkpoint-dir=a,b seed=0..1", "--out", "sw"]);
  assertEquals(axis.points.map((q) => q.outputs.checkpoint_dir), ["a/0", "a/1", "b/2", "b/3"]);
  assertEquals(manifestOf(axis).axes[0], { name: "checkpoint-dir", values: ["a", "b"] });
  // A manifest of an older sweep, without outputs, still reads.
  const m = manifestOf(p);
  parseManifest({ ...m, points: m.points.map(({ outputs: _, ...q }) => q) }, "manifest.json");
});

Deno.test("what the sweep decides itself, or a flag given twice, is refused in one line", async () => {
  const grid = ["--grid", "lr=0.1,0.2", "--out", "sw"];
  await assertFails(
    [...grid, "--summary", "s.json"],
    "--summary: the sweep writes each point's summary itself, to sw/<INDEX>.summary.json; " +
      "leave it out",
  );
  await assertFails(
    [...grid, "--save-init", "w.safetensors"],
    "--save-init: it writes initial weights and trains nothing, and a sweep's points train; " +
      "run deno task train --save-init on its own",
  );
  await assertFails(
    [...grid, "--format", "csv"],
    "--format: each point writes JSON Lines rows (sw/<INDEX>.jsonl); leave it out",
  );
  await plan([...grid, "--format", "jsonl"]);
  await assertFails(["--grid", "summary=a,b", "--out", "sw"], "--grid summary: the sweep writes");
  await assertFails(["--grid", "save-init=a", "--out", "sw"], "--grid save-init: it writes");
  await assertFails(["--grid", "format=csv,jsonl", "--out", "sw"], "--grid format: each point");
  await assertFails(
    ["--grid", "resume=a,b", "--out", "sw"],
    "--grid resume: a checkpoint fixes its run's settings",
  );
  for (const lr of [["--lr", "0.3"], ["--lr=0.3"]]) {
    await assertFails(
      [...grid, ...lr],
      "--lr: also a grid axis (--grid lr=...); give it once",
    );
  }
});

Deno.test("a config file is a base: its settings may be axes, or ignored by the model", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "base.json");
    // As an earlier sweep's point config: every setting, hidden too, and outputs of its own.
    Deno.writeTextFileSync(file, JSON.stringify({ lr: 0.3, hidden: [32], summary: "old.json" }));
    const p = await plan([
      "--config",
      file,
      "--grid",
      "lr=0.1,0.2",
      "--model",
      "cnn",
      "--out",
      "sw",
    ]);
    assertEquals(p.points.map((q) => [q.config.lr, q.config.summary]), [
      [0.1, "sw/0.summary.json"],
      [0.2, "sw/1.summary.json"],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("settings the model ignores and points that are the same config are refused", async () => {
  await assertFails(
    ["--grid", "hidden=32,64", "--model", "cnn", "--out", "sw"],
    "--grid hidden: --model cnn ignores hidden (it applies to mlp); the points would be identical",
  );
  await assertFails(
    ["--grid", "model=mlp,preresnet depth=8,20", "--out", "sw"],
    "--grid depth: --model mlp ignores depth (it applies to preresnet); the points would be " +
      "identical",
  );
  await assertFails(
    ["--grid", "seed=0,1", "--model", "cnn", "--width", "8", "--out", "sw"],
    "--width: --model cnn ignores width (it applies to preresnet)",
  );
  await assertFails(
    ["--grid", "model=cnn,preresnet", "--hidden", "64", "--out", "sw"],
    "--hidden: --model cnn, preresnet ignore hidden (it applies to mlp)",
  );
  // Some points use it: an MLP of 64 beside a CNN.
  await plan(["--grid", "model=mlp,cnn", "--hidden", "64", "--out", "sw"]);
  await assertFails(
    ["--grid", "seed=0 lr=0.1,1e-1", "--out", "sw"],
    "--grid points 0 (seed=0 lr=0.1) and 1 (seed=0 lr=1e-1) have the same config once " +
      "validated: the points would be identical",
  );
});
