/**
 * A sweep planned from its command line: the sweep's own flags (`--grid`, `--out`) parsed with
 * `node:util`'s parseArgs, the other flags read as the trainer reads them (the base config),
 * and every grid point validated by the trainer's own schema (`validateConfig`), so a point
 * that `deno task train` would refuse is refused here, before anything is written.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type Config, parseCommandLine, validateConfig } from "../pipeline/config.ts";
import { oneLine, ReportError } from "./errors.ts";
import { type GridAxis, gridPoints, parseGrid } from "./grid.ts";

/** One grid point: its index, its axis values (validated) and its whole config. */
export interface SweepPoint {
  index: number;
  settings: Record<string, unknown>;
  config: Config;
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
  if (!values.out) throw new ReportError("--out: required (the folder to write the configs to)");
  const axes = parseGrid(values.grid);
  const base = await baseConfig(rest);
  for (const a of axes) {
    for (const v of a.values) checked({ ...base, [a.name]: v }, `--grid ${a.name}=${v}`);
  }
  const points = gridPoints(axes).map((p, index) => {
    const where = `--grid point ${index} (${
      Object.entries(p).map(([k, v]) => `${k}=${v}`).join(" ")
    })`;
    const config = checked({ ...base, ...p }, where);
    const settings = Object.fromEntries(axes.map((a) => [a.name, config[a.name as keyof Config]]));
    return { index, settings, config };
  });
  return { help: false, plan: { grid: values.grid, axes, base: rest, out: values.out, points } };
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
DIR/manifest.json. Nothing is run: run each point with your scheduler, e.g.
  deno task train --config DIR/$INDEX.json --format jsonl \\
    --summary DIR/$INDEX.summary.json > DIR/$INDEX.jsonl
then draw the comparison with: deno task report DIR -o sweep.html

  --grid TEXT   axes separated by spaces: lr=0.05,0.1 (a list), seed=0..4 (integers,
                both ends included); a list-valued setting separates values with ';'
                (hidden=32,32;64,64); every combination is a point, first axis slowest
  --out DIR     the folder to create (it must not exist, or be empty)
  --help        this text
Any other flag is a train flag (deno task train --help), the same for every point.`;
