/**
 * A sweep planned from its command line: the sweep's own flags (`--grid`, `--out`) parsed with
 * `node:util`'s parseArgs, the other flags read as the trainer reads them (the base config),
 * and every grid point validated by the trainer's own schema (`validateConfig`), so a point
 * that `deno task train` would refuse is refused here, before anything is written. Each point
 * gets outputs of its own (summary, checkpoint folder), and a sweep that would drop a flag
 * silently or hold identical points is refused.
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  type Config,
  ignoredByModel,
  MODEL_SETTINGS,
  parseCommandLine,
  validateConfig,
} from "../pipeline/config.ts";
import { oneLine, ReportError } from "./errors.ts";
import { type GridAxis, gridPoints, parseGrid } from "./grid.ts";

/** Where a point writes, as its config says; `rows` is the file in the sweep folder. */
export interface PointOutputs {
  rows: string;
  summary: string;
  checkpoint_dir: string | null;
}

/** One grid point: its index, its axis values (validated), its whole config and its outputs. */
export interface SweepPoint {
  index: number;
  settings: Record<string, unknown>;
  config: Config;
  outputs: PointOutputs;
}

/** A planned sweep. */
export interface SweepPlan {
  grid: string;
  axes: GridAxis[];
  /** The train flags given besides `--grid` and `--out`. */
  base: string[];
  out: string;
  points: SweepPoint[];
}

/** The sweep's command line: help, or a plan. */
export type SweepCommand = { help: true } | { help: false; plan: SweepPlan };

const OWN = new Set(["--grid", "--out", "--help", "-h"]);

/** Splits argv into the sweep's own flags (with their values) and the train flags. */
function split(argv: string[]): { own: string[]; rest: string[] } {
  const own: string[] = [], rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], name = a.split("=")[0];
    if (!OWN.has(name)) rest.push(a);
    else if (a.includes("=") || name === "--help" || name === "-h") own.push(a);
    else own.push(a, ...argv.slice(i + 1, i + 2)), i++;
  }
  return { own, rest };
}

/** Parses and validates the sweep's command line; throws a one-line {@link ReportError}. */
export async function planSweep(argv: string[]): Promise<SweepCommand> {
  const { own, rest } = split(argv);
  let values;
  try {
    values = parseArgs({
      args: own,
      options: {
        grid: { type: "string" },
        out: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new ReportError(`command line: ${oneLine(e)}`);
  }
  if (values.help) return { help: true };
  if (values.grid === undefined) {
    throw new ReportError("--grid: required, e.g. --grid 'lr=0.05,0.1 seed=0..4'");
  }
  const out = values.out;
  if (!out) throw new ReportError("--out: required (the folder to write the configs to)");
  const axes = parseGrid(values.grid);
  const base = await baseConfig(rest);
  // The flags given, by name: a value never starts with "--" (the trainer refuses that).
  const flags = rest.filter((a) => a.startsWith("--")).map((a) => a.slice(2).split("=")[0])
    .filter((k) => k !== "config");
  refuseConflicts(axes, flags, base, out);
  for (const a of axes) {
    for (const v of a.values) checked({ ...base, [a.name]: v }, `--grid ${a.name}=${v}`);
  }
  const raw = gridPoints(axes);
  const where = raw.map((p) => Object.entries(p).map(([k, v]) => `${k}=${v}`).join(" "));
  const configs = raw.map((p, i) => checked({ ...base, ...p }, `--grid point ${i} (${where[i]})`));
  refuseIgnored(axes, flags, configs);
  const seen = new Map<string, number>();
  for (const [i, c] of configs.entries()) {
    const key = JSON.stringify(c, Object.keys(c).sort());
    const twin = seen.get(key);
    if (twin !== undefined) {
      throw new ReportError(
        `--grid points ${twin} (${where[twin]}) and ${i} (${where[i]}) have the same config ` +
          "once validated: the points would be identical",
      );
    }
    seen.set(key, i);
  }
  const points = configs.map((c, index) => {
    const outputs = outputsOf(c, out, index);
    const config = checked({
      ...c,
      format: "jsonl",
      summary: outputs.summary,
      "checkpoint-dir": outputs.checkpoint_dir ?? undefined,
    }, `--grid point ${index} (${where[index]})`);
    // The axis values as validated, before the point's own output paths are added to them.
    const settings = Object.fromEntries(axes.map((a) => [a.name, c[a.name as keyof Config]]));
    return { index, settings, config, outputs };
  });
  return { help: false, plan: { grid: values.grid, axes, base: rest, out, points } };
}

/**
 * Each point's own outputs, so that no two points write one file: its rows (JSON Lines), its
 * summary in the sweep folder, and its checkpoints in a folder of its own under the one given.
 */
function outputsOf(config: Config, out: string, index: number): PointOutputs {
  const dir = config["checkpoint-dir"];
  return {
    rows: `${index}.jsonl`,
    summary: join(out, `${index}.summary.json`),
    checkpoint_dir: dir === undefined ? null : join(dir, String(index)),
  };
}

/**
 * Refuses what the sweep decides itself or cannot honour: a flag that is also a grid axis (one
 * would silently win), `--summary` and `--format` (each point writes its own summary and JSON
 * Lines rows), `--save-init` (it trains nothing), and grid axes over those or over `--resume`.
 */
function refuseConflicts(
  axes: GridAxis[],
  flags: string[],
  base: Config,
  out: string,
): void {
  for (const a of axes) {
    if (flags.includes(a.name)) {
      throw new ReportError(`--${a.name}: also a grid axis (--grid ${a.name}=...); give it once`);
    }
  }
  const own = `the sweep writes each point's summary itself, to ${out}/<INDEX>.summary.json`;
  const jsonl = `each point writes JSON Lines rows (${out}/<INDEX>.jsonl)`;
  const saveInit = "it writes initial weights and trains nothing, and a sweep's points train";
  if (flags.includes("summary")) throw new ReportError(`--summary: ${own}; leave it out`);
  if (flags.includes("format") && base.format !== "jsonl") {
    throw new ReportError(`--format: ${jsonl}; leave it out`);
  }
  if (base["save-init"] !== undefined) {
    throw new ReportError(`--save-init: ${saveInit}; run deno task train --save-init on its own`);
  }
  const refused = new Map([
    ["summary", own],
    ["format", jsonl],
    ["save-init", saveInit],
    [
      "resume",
      "a checkpoint fixes its run's settings, so points resuming different ones are not one " +
      "grid; resume a point on its own (deno task train --config FILE --resume ...)",
    ],
  ]);
  for (const a of axes) {
    const why = refused.get(a.name);
    if (why) throw new ReportError(`--grid ${a.name}: ${why}`);
  }
}

/**
 * Refuses a setting given (a flag or an axis) that the points' model ignores (`--hidden` with
 * `--model cnn`): an axis of it would make identical points, and a flag would do nothing.
 */
function refuseIgnored(axes: GridAxis[], flags: string[], configs: Config[]): void {
  const given = [
    ...flags.map((k) => ({ name: `--${k}`, setting: k, values: 1 })),
    ...axes.map((a) => ({ name: `--grid ${a.name}`, setting: a.name, values: a.values.length })),
  ];
  for (const g of given) {
    const ignoring = configs.filter((c) => ignoredByModel(c, [g.setting]).length > 0);
    const identical = g.values > 1 && ignoring.length > 0;
    if (!identical && ignoring.length < configs.length) continue;
    const models = [...new Set(ignoring.map((c) => c.model))];
    throw new ReportError(
      `${g.name}: --model ${models.join(", ")} ignore${models.length > 1 ? "" : "s"} ` +
        `${g.setting} (it applies to ${MODEL_SETTINGS[g.setting]})` +
        (identical ? "; the points would be identical" : ""),
    );
  }
}

/**
 * The train flags besides the grid, validated as `deno task train` validates them (a bad one
 * throws the trainer's one-line ConfigError).
 */
async function baseConfig(flags: string[]): Promise<Config> {
  const cmd = await parseCommandLine(flags);
  if (cmd.help) throw new ReportError("--help: deno task train --help lists the train flags");
  return cmd.config;
}

/** `raw` validated by the trainer's schema; its ConfigError names `where` and the setting. */
function checked(raw: Record<string, unknown>, where: string): Config {
  return validateConfig(raw, where);
}

/** `deno task sweep --help`. */
export const SWEEP_HELP = `Usage: deno task sweep --grid 'NAME=VALUES ...' --out DIR [train flags]
Writes one validated config file per grid point (DIR/0.json, DIR/1.json, ...) and
DIR/manifest.json. Each config names the point's own outputs: JSON Lines rows (DIR/INDEX.jsonl
by the redirection below), its summary DIR/INDEX.summary.json and, given --checkpoint-dir CK,
its checkpoints in CK/INDEX. Nothing is run: run each point with your scheduler, e.g.
  deno task train --config DIR/$INDEX.json > DIR/$INDEX.jsonl
then draw the comparison with: deno task report DIR -o sweep.html

  --grid TEXT   axes separated by spaces: lr=0.05,0.1 (a list), seed=0..4 (integers,
                both ends included); a list-valued setting separates values with ';'
                (hidden=32,32;64,64); every combination is a point, first axis slowest
  --out DIR     the folder to create (it must not exist, or be empty)
  --help        this text
Any other flag is a train flag (deno task train --help), the same for every point. Refused:
a flag that is also an axis, --summary, --format csv, --save-init, an axis over summary,
format, save-init or resume, a setting the model ignores (--hidden with --model cnn), and
two points with the same config.`;
