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
    const cmd = await parseCommandLine(["--config", join(out, "3.json"), "--format", "jsonl"]);
    if (cmd.help) throw new Error("help");
    assertEquals([cmd.config.wd, cmd.config.seed, cmd.config.steps, cmd.config.format], [
      5e-3,
      4,
      7,
      "jsonl",
    ]);
    const m = parseManifest(JSON.parse(Deno.readTextFileSync(join(out, "manifest.json"))), "m");
    assertEquals(m.points[2], { index: 2, config: "2.json", settings: { wd: 5e-3, seed: 3 } });
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
