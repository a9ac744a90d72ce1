/**
 * `deno task sweep`: expands a grid of train settings into one validated config file per point
 * and a manifest, in a new folder. Nothing is scheduled: a cluster's scheduler (a Slurm job
 * array, a Kubernetes Indexed Job) or `xargs -P` runs the points; see README "Report and
 * sweeps". The folder appears whole or not at all: it is written under a temporary name next
 * to it and renamed.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { checkOutputPath } from "../pipeline/paths.ts";
import { VERSION } from "../pipeline/version.ts";
import { writeFileAtomic } from "../stages/files.ts";
import { log, printHelp, runCommand } from "./cli.ts";
import { oneLine, ReportError } from "./errors.ts";
import { MANIFEST, type Manifest } from "./manifest.ts";
import { planSweep, SWEEP_HELP, type SweepPlan } from "./sweep_plan.ts";

/** The manifest of a plan. */
export function manifestOf(plan: SweepPlan): Manifest {
  return {
    version: VERSION,
    grid: plan.grid,
    axes: plan.axes.map((a) => ({
      name: a.name,
      values: [...new Set(plan.points.map((p) => JSON.stringify(p.settings[a.name])))].map((v) =>
        JSON.parse(v)
      ),
    })),
    base: plan.base,
    count: plan.points.length,
    points: plan.points.map((p) => ({
      index: p.index,
      config: `${p.index}.json`,
      settings: p.settings,
      outputs: p.outputs,
    })),
  };
}

/**
 * Throws unless `out` is an empty folder, or can be created: its folder exists and lets us
 * create in it. The messages name `out` and its folder, never the temporary name.
 */
async function checkOut(out: string): Promise<void> {
  let info: Deno.FileInfo | null = null;
  try {
    info = await Deno.stat(out);
  } catch {
    // Not there, or not to be looked at (`/proc/sw`): to be created, as checked below.
  }
  if (info) {
    if (!info.isDirectory) throw new ReportError(`--out: ${out} exists and is not a folder`);
    for await (const _ of Deno.readDir(out)) {
      throw new ReportError(`--out: ${out} is not empty (a sweep folder is written whole)`);
    }
    return;
  }
  const parent = dirname(out);
  const folder = await Deno.stat(parent).catch((e) => {
    if (e instanceof Deno.errors.NotFound) {
      throw new ReportError(`--out: cannot create ${out}: folder ${parent} does not exist`);
    }
    return null;
  });
  if (folder && !folder.isDirectory) {
    throw new ReportError(`--out: cannot create ${out}: ${parent} is not a folder`);
  }
  // Whether the folder lets us create in it, in words that never advise a Deno flag. A folder
  // name may end in /, which checkOutputPath (made for files) refuses.
  await checkOutputPath("--out", out.replace(/(.)\/+$/, "$1"));
}

/** Writes the plan's configs and manifest into a new folder `plan.out`. */
export async function writeSweep(plan: SweepPlan): Promise<void> {
  await checkOut(plan.out);
  const parent = dirname(plan.out);
  const tmp = join(parent, `.${basename(plan.out)}.${Deno.pid}.tmp`);
  try {
    await Deno.mkdir(tmp);
  } catch (e) {
    // Checked above: only a change in the meantime (or a full disk) comes here.
    const why = oneLine(e).replace(/\s*\(os error \d+\)[^]*$/, "");
    throw new ReportError(`--out: cannot create ${plan.out}: ${why}`);
  }
  try {
    for (const p of plan.points) {
      await writeFileAtomic(join(tmp, `${p.index}.json`), JSON.stringify(p.config, null, 2) + "\n");
    }
    const manifest = JSON.stringify(manifestOf(plan), null, 2) + "\n";
    await writeFileAtomic(join(tmp, MANIFEST), manifest);
    await Deno.rename(tmp, plan.out);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

/** Runs the sweep command with `args`; returns the exit code. */
export function main(args: string[]): Promise<number> {
  return runCommand(async () => {
    const cmd = await planSweep(args);
    if (cmd.help) return printHelp(SWEEP_HELP);
    const { plan } = cmd;
    await writeSweep(plan);
    const shape = plan.axes.map((a) => `${a.name} ${a.values.length}`).join(" × ");
    const last = plan.points.length - 1;
    log(`sweep: ${plan.points.length} points (${shape}) in ${plan.out}/0.json … ${last}.json`);
    log(
      `run each INDEX in 0..${last}: ` +
        `deno task train --config ${plan.out}/$INDEX.json > ${plan.out}/$INDEX.jsonl`,
    );
    return 0;
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
