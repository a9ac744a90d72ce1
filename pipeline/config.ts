/**
 * The configuration: every setting, its flag, default and help text, validated by one zod
 * schema whether it comes from the command line (`--bn-eps 0`) or a JSON config file
 * (`{"bn-eps": 0}`); the command line overrides the file, the file overrides the defaults.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { z } from "zod";
import { RUN_NAMES } from "../core/runs.ts";
import { scheduleUsesLength } from "../core/schedule.ts";
import { type Precision, PRECISIONS } from "../shaders/precision.ts";
import {
  ADAPTER_ENV,
  type GpuChoice,
  gpuChoiceFromEnv,
  WEBGPU_ENV,
  WEBGPU_IMPLEMENTATIONS,
} from "../shaders/webgpu.ts";

/** Thrown for a bad flag, a bad config file or a value that fails validation; one line. */
export class ConfigError extends Error {}

/** A value as an error message shows it: strings quoted, so an empty one is visible. */
const shown = (v: unknown) =>
  typeof v === "string" || (typeof v === "object" && v !== null) ? JSON.stringify(v) : String(v);
/** A path or name; an empty one is named as such (not zod's "Too small"). */
const nonEmpty = () => z.string().min(1, "expected a file name, got an empty value");
const bool = z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")], {
  error: (issue) => `expected true or false, got ${shown(issue.input)}`,
});
/**
 * A number: a JSON number, or a string that reads as one after trimming (a flag's value). Empty
 * strings, booleans and null are errors, not 0 or 1 as `Number()` would make them.
 */
const number = () =>
  z.number({
    error: (issue) =>
      typeof issue.input === "number"
        ? "expected a finite number"
        : `expected a number, got ${shown(issue.input)}`,
  });
/** Reads a numeric string as its number; anything else is left for `number()` to reject. */
const toNumber = (v: unknown) => {
  if (typeof v !== "string" || v.trim() === "") return v;
  const n = Number(v.trim());
  return Number.isNaN(n) ? v : n;
};
const positive = z.preprocess(toNumber, number().refine((v) => v > 0, "expected a number > 0"));
const nonNegative = z.preprocess(
  toNumber,
  number().refine((v) => v >= 0, "expected a number >= 0"),
);
const int = (min: number) =>
  z.preprocess(
    toNumber,
    number().int("expected an integer").min(min, `expected an integer >= ${min}`),
  );
/** A comma-separated list on the command line, or a JSON array in a config file. */
const list = <T extends z.ZodType>(item: T) =>
  z.preprocess(
    (v) => (typeof v === "string" ? (v.trim() === "" ? [] : v.split(",")) : v),
    z.array(item),
  );
const runName = z.enum(RUN_NAMES);

/**
 * The default probe period: the probe (half of a metered MLP step with it, on lavapipe) then
 * adds about 10% to the metered step (bench and profile: docs/results/).
 */
export const PROBE_EVERY = 10;

/** The built-in models' names (`--model`); anything else must be a model file. */
export const BUILTIN_MODELS: readonly string[] = ["mlp", "cnn", "preresnet"];

/** Whether `--model` names a file (a path ending in .ts, .js, .mts or .mjs), not a built-in. */
export function isModelFile(model: string): boolean {
  return /\.(ts|js|mts|mjs)$/.test(model);
}

/** Every setting: its schema (with default) and one line of help. Keys are the flag names. */
const SETTINGS = {
  // data
  data: [
    z.string().min(1, "expected default, fashion-mnist or a path, got an empty value")
      .default("default"),
    "dataset: default (shipped Fashion-MNIST test set), fashion-mnist (Debian's full set), or a file/folder (IDX, CIFAR-10 binary, CSV)",
  ],
  "label-column": [
    z.string().optional(),
    "CSV: label column, by header name or 0-based index (default: the column named label in a header, else column 0)",
  ],
  heldout: [int(1).default(1000), "examples held out when the data has no separate test split"],
  probe: [
    int(2).optional(),
    "probe batch size (held-out examples the monitor evaluates every step) (default: 512 for mlp, 128 for the other models)",
  ],
  "batch-size": [int(2).default(128), "mini-batch size"],
  epochs: [int(1).default(1), "passes over the training split (unless --steps is given)"],
  steps: [
    int(0).default(0),
    "run this many steps, as many epochs as they take (0: --epochs epochs)",
  ],
  shuffle: [bool.default(true), "reshuffle every epoch with the seeded PRNG (false = file order)"],
  "last-batch": [
    z.enum(["drop", "keep"]).default("drop"),
    "a last partial batch of an epoch is dropped or kept",
  ],
  seed: [int(0).default(0), "seed of initialisation, shuffling and the A2 perturbation"],
  // model
  model: [
    z.string().refine(
      (m) => BUILTIN_MODELS.includes(m) || isModelFile(m),
      `expected ${BUILTIN_MODELS.join(", ")} or a model file (.ts, .js), see docs/models.md`,
    ).default("mlp"),
    "network: mlp (--hidden), cnn (3 conv blocks of 32/64/64), preresnet (--depth, --width), or a model file path/to/net.ts exporting model(x, data) (docs/models.md; examples in models/)",
  ],
  hidden: [
    list(int(1)).refine((h) => h.length > 0, "expected at least one hidden width").default([
      256,
      256,
    ]),
    "mlp: hidden widths, comma-separated",
  ],
  depth: [int(8).default(20), "preresnet: depth 6n+2 (8, 20, 32, 56, ...)"],
  width: [int(1).default(16), "preresnet: base channels (stages of w, 2w, 4w)"],
  augment: [
    list(z.enum(["flip", "crop"])).default([]),
    "image augmentation, comma-separated: flip (horizontal), crop (pad 4, random crop)",
  ],
  "bn-affine": [
    bool.default(true),
    "normalizations (BatchNorm, GroupNorm, LayerNorm) have learnable scale and shift (group O)",
  ],
  "bn-eps": [nonNegative.default(1e-5), "eps of every normalization"],
  "bn-eps-mode": [
    z.enum(["scaled", "fixed"]).default("scaled"),
    "scaled: run B uses eps*c_t^2 (exact); fixed: plain eps everywhere (as PyTorch)",
  ],
  "bn-momentum": [positive.default(0.1), "BatchNorm running-statistics momentum"],
  "running-stats": [
    z.enum(["weightnorm", "plain"]).default("weightnorm"),
    "running statistics stored in units of the layer's weight norm (exact for B) or plain",
  ],
  precision: [
    z.enum(PRECISIONS as [Precision, ...Precision[]]).default("f32"),
    "arithmetic of every kernel: f32; df64 (float32 pairs, ~48-bit mantissa, slower; self-tested at startup); f64 (native, needs the adapter's shader-f64)",
  ],
  "init-scale": [
    positive.default(1),
    "multiply the initial S weights by this (THEORY §8 experiments)",
  ],
  // runs and optimiser
  runs: [
    list(runName).default(["A", "B", "A1"]),
    "runs in lockstep, A first: A, B, A1 (one-ulp control), A2 (per-step ulp noise), C (const lr, no wd)",
  ],
  explr: [
    z.enum(["exact", "closed", "closed-zero"]).default("exact"),
    "run B's schedule: exact recursion, closed form with matched buffer, closed form with zero buffer",
  ],
  lr: [positive.default(0.1), "run A's base learning rate for group S"],
  wd: [nonNegative.default(5e-4), "run A's weight decay for group S"],
  momentum: [
    nonNegative.refine((v) => v < 1, "expected momentum < 1").default(0.9),
    "momentum (every run and group)",
  ],
  schedule: [z.enum(["const", "step", "cosine"]).default("const"), "run A's group-S lr schedule"],
  milestones: [
    list(positive).default([0.5, 0.75]),
    "step schedule: steps (>= 1) or fractions of all steps (< 1)",
  ],
  "step-factor": [positive.default(0.1), "step schedule: lr multiplier at each milestone"],
  "min-lr-factor": [nonNegative.default(0), "cosine schedule: final lr as a fraction of --lr"],
  warmup: [int(0).default(0), "linear warm-up steps (combines with any schedule)"],
  "warmup-start": [nonNegative.default(0.1), "warm-up starts at this fraction of the lr"],
  "lr-o": [positive.optional(), "learning rate of group O, every run (default: --lr, constant)"],
  "wd-o": [nonNegative.optional(), "weight decay of group O, every run (default: --wd)"],
  "wd-style": [
    z.enum(["coupled", "decoupled"]).default("coupled"),
    "coupled (PyTorch SGD) or THEORY §8's w <- (1-wd) w - lr*buf",
  ],
  "rescale-above": [
    positive.default(65536),
    "rescale a run (Lemma 2, by a power of two) when its S weight norm passes this",
  ],
  // output
  format: [z.enum(["csv", "jsonl"]).default("csv"), "stdout format"],
  every: [int(1).default(1), "emit (and read back) metrics every N steps"],
  "probe-every": [
    int(1).default(PROBE_EVERY),
    "evaluate the probe (held-out distances, probe_acc) every N steps and at the last step",
  ],
  "eval-every": [
    int(0).default(50),
    "eval-mode (running statistics) distance every N steps (0 = never)",
  ],
  "per-layer": [bool.default(false), "also emit per-layer effective learning rates"],
  quiet: [bool.default(false), "no progress line on stderr"],
  summary: [nonEmpty().optional(), "also write the final summary as JSON to this file"],
  "in-flight": [int(1).default(2), "training steps kept in flight on the GPU"],
  // GPU
  webgpu: [
    z.enum(WEBGPU_IMPLEMENTATIONS).optional(),
    `WebGPU implementation: deno (built-in, wgpu) or dawn (npm webgpu, Chrome's) (default: $${WEBGPU_ENV}, else deno)`,
  ],
  adapter: [
    z.preprocess(
      (v) => (typeof v === "number" && Number.isInteger(v) && v >= 0 ? String(v) : v),
      z.string({ error: "expected an adapter's index or name" }).trim()
        .min(1, "expected an adapter's index or name"),
    ).optional(),
    `adapter, by index or part of its name as deno task gpus lists them (default: $${ADAPTER_ENV}, else the implementation's choice)`,
  ],
  tune: [
    z.enum(["off", "cached", "on"]).default("cached"),
    "kernel tilings: off (the hand-picked defaults), cached (the tilings cache's for this adapter, defaults elsewhere), on (tune the kernels the cache lacks first)",
  ],
  "tune-cache": [
    nonEmpty().optional(),
    "the tilings cache file (default: wd-explr/tilings.json in the user's cache folder, e.g. ~/.cache)",
  ],
  budget: [positive.default(60), "seconds deno task tune and --tune on may spend tuning"],
  // checkpoints and weights
  "checkpoint-dir": [
    nonEmpty().optional(),
    "write checkpoints (step-N.safetensors) here: every --checkpoint-every steps, at the end, and on SIGINT/SIGTERM",
  ],
  "checkpoint-every": [
    int(0).default(0),
    "steps between checkpoints (0: only at the end and when interrupted)",
  ],
  keep: [int(1).default(3), "newest checkpoints kept in --checkpoint-dir"],
  resume: [
    nonEmpty().optional(),
    "continue from a checkpoint: a .safetensors file, or a folder (its newest)",
  ],
  "save-init": [
    nonEmpty().optional(),
    "write run A's initial weights to this .safetensors file and exit",
  ],
  "init-from": [
    nonEmpty().optional(),
    "start every run from these weights (.safetensors: --save-init's names, or a PyTorch state_dict's)",
  ],
} as const satisfies Record<string, readonly [z.ZodType, string]>;

type Settings = typeof SETTINGS;
/** The validated configuration, keyed by flag name. */
export type Config = { -readonly [K in keyof Settings]: z.output<Settings[K][0]> };

const schema = z.strictObject(
  Object.fromEntries(Object.entries(SETTINGS).map(([k, [s]]) => [k, s])) as {
    [K in keyof Settings]: Settings[K][0];
  },
).superRefine((c, ctx) => {
  const fail = (path: string, message: string) =>
    ctx.addIssue({ code: "custom", path: [path], message });
  if (c.runs[0] !== "A") fail("runs", "must start with A (every distance is measured against A)");
  if (new Set(c.runs).size !== c.runs.length) fail("runs", "lists a run twice");
  if (c.runs.includes("B") && c.explr !== "exact" && (c.schedule !== "const" || c.warmup > 0)) {
    fail(
      "explr",
      `${c.explr} is the closed form for a constant lr: needs --schedule const and no --warmup`,
    );
  }
  if (c.runs.includes("B") && c["wd-style"] !== "coupled") {
    fail("wd-style", "run B's equivalent schedule (THEORY §3) is derived for coupled weight decay");
  }
  if ((c.depth - 2) % 6 !== 0) fail("depth", "expected 6n+2 (8, 20, 32, 56, ...)");
  if (c["checkpoint-every"] > 0 && !c["checkpoint-dir"]) {
    fail("checkpoint-every", "needs --checkpoint-dir");
  }
  if (c["init-from"] && c["init-scale"] !== 1) {
    fail("init-scale", "cannot be combined with --init-from (the file gives run A's weights)");
  }
  if (c.schedule === "step" && c.milestones.length === 0) {
    fail("milestones", "step schedule needs milestones");
  }
  if (c.milestones.some((m) => m >= 1 && !Number.isInteger(m))) {
    fail("milestones", "each is a step (an integer >= 1) or a fraction of the run (< 1)");
  }
});

/** Flags that take no value on the command line (`--quiet`, `--per-layer`). */
const SWITCHES = new Set<string>(["quiet", "per-layer"]);

const COMMAND_LINE = "command line";

/** Validates a raw object of settings (flag-name keys) into a {@link Config}. */
export function validateConfig(raw: Record<string, unknown>, source: string): Config {
  const result = schema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    const issue = result.error.issues[0];
    const [setting, item] = issue.path;
    const key = issue.code === "unrecognized_keys"
      ? issue.keys[0]
      : `${String(setting)}${item === undefined ? "" : ` (item ${Number(item) + 1})`}`;
    const what = issue.code === "unrecognized_keys"
      ? "unknown setting"
      : issue.code === "invalid_value"
      ? `expected one of ${issue.values.join(", ")}, got ${shown(issue.input)}`
      : issue.message;
    const name = source === COMMAND_LINE ? `--${key}` : `${source}: ${key}`;
    throw new ConfigError(`${name}: ${what}`);
  }
  return result.data as Config;
}

/**
 * Settings that do not change the trajectory of any run: output, metering, the probe,
 * checkpointing, the run's length (when the schedule does not depend on it), the WebGPU
 * implementation, adapter and kernel tilings (another may round differently, as another machine
 * does). A
 * resumed run may change them, and {@link configHash} leaves them out.
 */
export const OUTPUT_SETTINGS: ReadonlySet<string> = new Set([
  "format",
  "every",
  "eval-every",
  "probe-every",
  "per-layer",
  "quiet",
  "summary",
  "in-flight",
  "probe",
  "checkpoint-dir",
  "checkpoint-every",
  "keep",
  "resume",
  "save-init",
  "steps",
  "epochs",
  "webgpu",
  "adapter",
  "tune",
  "tune-cache",
  "budget",
]);

/**
 * The settings that decide the trajectory, in key order: all but {@link OUTPUT_SETTINGS}, and
 * the run's length (`steps`, `epochs`) when the schedule depends on it (cosine, milestones given
 * as fractions).
 */
export function trajectorySettings(config: Config): Record<string, unknown> {
  const usesLength = scheduleUsesLength(config.schedule, config.milestones);
  const counts = (k: string) =>
    !OUTPUT_SETTINGS.has(k) || (usesLength && /^(steps|epochs)$/.test(k));
  return Object.fromEntries(
    Object.entries(config as Record<string, unknown>)
      .filter(([k, v]) => counts(k) && v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1)),
  );
}

/**
 * 16 hex digits of the SHA-256 of {@link trajectorySettings} as JSON: runs with one hash
 * compute the same steps, so a checkpoint folder and a summary name their run by it.
 */
export function configHash(config: Config): string {
  return createHash("sha256").update(JSON.stringify(trajectorySettings(config))).digest("hex")
    .slice(0, 16);
}

/** The settings that shape only one model; for any other `--model` they are ignored. */
export const MODEL_SETTINGS: Readonly<Record<string, Config["model"]>> = {
  hidden: "mlp",
  depth: "preresnet",
  width: "preresnet",
};

/**
 * Of the settings `given`, those that the config's model ignores (`--hidden` with `cnn`) and
 * that are not at their default (a config file written by a sweep holds every setting).
 */
export function ignoredByModel(config: Config, given: Iterable<string>): string[] {
  const defaults = defaultConfig() as Record<string, unknown>;
  const value = (c: Record<string, unknown>, k: string) => JSON.stringify(c[k]);
  return [...given].filter((k) =>
    MODEL_SETTINGS[k] !== undefined && MODEL_SETTINGS[k] !== config.model &&
    value(config, k) !== value(defaults, k)
  );
}

/**
 * The implementation and adapter a configuration asks for: its `webgpu` and `adapter`, each
 * else the environment's ({@link gpuChoiceFromEnv}; a bad value there is a one-line error).
 */
export function gpuChoiceOf(config: Partial<Pick<Config, "webgpu" | "adapter">>): GpuChoice {
  let webgpu = config.webgpu;
  if (webgpu === undefined) {
    try {
      webgpu = gpuChoiceFromEnv().webgpu;
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
  }
  return { webgpu, adapter: config.adapter ?? (Deno.env.get(ADAPTER_ENV)?.trim() || undefined) };
}

/** The defaults, as `--help` prints them. */
export function defaultConfig(): Config {
  return validateConfig({}, "defaults");
}

/** One line per flag with its default, for `--help`. */
export function helpText(): string {
  const defaults = defaultConfig() as Record<string, unknown>;
  const lines = Object.entries(SETTINGS).map(([k, [, help]]) => {
    const d = defaults[k];
    const list = (a: unknown[]) => (a.length ? a.join(",") : "none");
    const shown = d === undefined ? "" : ` (default: ${Array.isArray(d) ? list(d) : d})`;
    return `  --${k.padEnd(15)} ${help}${shown}`;
  });
  return [
    "Usage: deno task train [flags]",
    "Trains a normalized network on WebGPU as several runs in lockstep and streams per-step",
    "metrics to stdout (CSV or JSON Lines). Every flag can also come from --config FILE (JSON, same",
    "names). deno task inspect [flags] prints the model they choose (graph, group S and why), no GPU.",
    "deno task tune [flags] tunes the kernel tilings of the step they choose on this GPU (--budget).",
    "",
    "  --config FILE     read settings from a JSON file (flags override it)",
    "  --help            this text",
    ...lines,
  ].join("\n");
}

/**
 * The parsed command line: either a request for help or a validated configuration, with the
 * settings given explicitly (by a flag or the config file; the others are defaults) and the
 * config file's path.
 */
export type CommandLine =
  | { help: true }
  | { help: false; config: Config; given: string[]; configFile?: string };

/** Parses argv (flags of {@link SETTINGS}, `--config FILE`, `--help`) into a {@link Config}. */
export async function parseCommandLine(argv: string[]): Promise<CommandLine> {
  const options: Record<string, { type: "string" | "boolean" }> = {
    config: { type: "string" },
    help: { type: "boolean" },
  };
  for (const k of Object.keys(SETTINGS)) {
    options[k] = { type: SWITCHES.has(k) ? "boolean" : "string" };
  }
  let parsed;
  try {
    const args = joinValues(argv, options);
    parsed = parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (e) {
    throw new ConfigError(`command line: ${(e as Error).message.split("\n")[0]}`);
  }
  const { config: file, help, ...flags } = parsed.values as Record<string, unknown>;
  if (help) return { help: true };
  let fromFile: Record<string, unknown> = {};
  if (typeof file === "string") fromFile = await readConfigFile(file);
  // Validate the file alone first, so its errors name the file rather than the command line.
  validateConfig(fromFile, file as string ?? "config");
  const given = [...new Set([...Object.keys(fromFile), ...Object.keys(flags)])];
  const config = validateConfig({ ...fromFile, ...flags }, COMMAND_LINE);
  return { help: false, config, given, configFile: file as string | undefined };
}

/** A negative number (`-5`, `-.5`, `-1e-3`): a flag's value, not a flag. */
const NEGATIVE = /^-\d|^-\.\d/;

/**
 * `argv` with each value-taking flag followed by a negative number joined to it
 * (`--batch-size -5` becomes `--batch-size=-5`), which parseArgs would otherwise take for a flag.
 * A value-taking flag followed by another flag (`--wd $WD` with WD unset) is an error.
 */
function joinValues(
  argv: string[],
  options: Record<string, { type: "string" | "boolean" }>,
): string[] {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i], next = argv[i + 1];
    const takesValue = arg.startsWith("--") && options[arg.slice(2)]?.type === "string";
    if (takesValue && next !== undefined && NEGATIVE.test(next)) {
      args.push(`${arg}=${next}`);
      i++;
    } else if (takesValue && next?.startsWith("-") && next !== "-") {
      throw new ConfigError(`${arg}: expected a value, got the flag ${next}`);
    } else {
      args.push(arg);
    }
  }
  return args;
}

async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    // A BOM (editors on Windows write one) is not JSON: the decoder drops it.
    text = new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(path));
  } catch (e) {
    if (e instanceof TypeError) throw new ConfigError(`${path}: not UTF-8 text (a binary file?)`);
    // One line without cutting: the message names the path, which may hold a line break.
    const message = (e as Error).message.replace(/\s*[\r\n]+\s*/g, " ");
    throw new ConfigError(`${path}: cannot read config file: ${message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // The message may quote the file (V8: `Unexpected token ',', ..."<text>" is not valid
    // JSON`): escape its line breaks, so it stays one line without cutting the quote.
    const message = (e as Error).message.replace(/\r/g, "\\r").replace(/\n/g, "\\n");
    throw new ConfigError(`${path}: not valid JSON: ${message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(`${path}: expected a JSON object of settings`);
  }
  return value as Record<string, unknown>;
}
