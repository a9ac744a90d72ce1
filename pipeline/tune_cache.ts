/**
 * The tuned tilings cache: one JSON file a person can read and edit, holding per measuring
 * identity (WebGPU implementation, adapter, driver, tool version) each kernel's tuned tiling.
 *
 * - Keyed by the identity because a tiling tuned on one adapter or driver says nothing about
 *   another, and a new tool version may change the kernels; a section of the same adapter with
 *   another version is stale and dropped on the next save, other adapters' sections are kept.
 * - A cache is an optimisation, never an input the run depends on: a missing, unreadable,
 *   invalid or stale file means the default tilings, with one line saying why, never a failure;
 *   so does, for its kernel, a tiling the kernel cannot take (tune.ts's `usableTilings`).
 * - Validated by a zod schema (a hand-edited tiling of -1 must not reach a shader), written
 *   atomically with sorted keys so the file is stable and diffs stay readable.
 *
 * @module
 */

import { dirname } from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "../stages/files.ts";

/** The `format` of a tilings cache file; another value is not this file format. */
export const TUNE_CACHE_FORMAT = "wd-explr tilings 1";

/** Who measured: the cache's key. */
export interface TuneIdentity {
  implementation: string;
  adapter: string;
  driver: string;
  version: string;
}

/**
 * One kernel's tuned choice. `tiling` holds the overrides of the kernel's default tiling: field
 * names to numbers or booleans; {} = the default won.
 */
export interface TunedEntry {
  tiling: Record<string, number | boolean>;
  defaultMs: number;
  tunedMs: number;
  tried: number;
  rejected: number;
  tunedAt: string;
}

const TILING_VALUE = "expected a positive integer <= 4096 or a boolean";
const tilingValue = z.union(
  [z.boolean(), z.number().int(TILING_VALUE).min(1, TILING_VALUE).max(4096, TILING_VALUE)],
  { error: TILING_VALUE },
);
const ms = z.number({ error: "expected a finite number of ms" }).min(0, "expected ms >= 0");
const count = z.number().int("expected an integer").min(0, "expected a count >= 0");

const entrySchema = z.object({
  tiling: z.record(z.string(), tilingValue),
  defaultMs: ms,
  tunedMs: ms,
  tried: count,
  rejected: count,
  tunedAt: z.string(),
});

const tuningSchema = z.object({
  implementation: z.string(),
  adapter: z.string(),
  driver: z.string(),
  version: z.string(),
  kernels: z.record(z.string(), entrySchema),
});

const fileSchema = z.object({
  format: z.literal(TUNE_CACHE_FORMAT),
  tunings: z.array(tuningSchema).superRefine((tunings, ctx) => {
    const seen = new Set<string>();
    tunings.forEach((t, i) => {
      const id = identityKey(t);
      if (seen.has(id)) {
        ctx.addIssue({ code: "custom", path: [i], message: `a second tuning for ${describe(t)}` });
      }
      seen.add(id);
    });
  }),
});

type Tuning = z.infer<typeof tuningSchema>;
type CacheFile = z.infer<typeof fileSchema>;

/**
 * The default cache file: $XDG_CACHE_HOME/wd-explr/tilings.json, else
 * ~/.cache/wd-explr/tilings.json on Linux (and other Unixes);
 * ~/Library/Caches/wd-explr/tilings.json on macOS; %LOCALAPPDATA%\wd-explr\tilings.json on
 * Windows (else %USERPROFILE%\AppData\Local\...). Takes env and os (as `Deno.build.os` names
 * it) as arguments (pure, testable). A relative XDG_CACHE_HOME is ignored, as the XDG spec asks.
 * Throws when the home folder it needs is not set.
 */
export function defaultTuneCachePath(env: Record<string, string | undefined>, os: string): string {
  const trim = (p: string) => p.replace(/[\\/]+$/, "") || p;
  if (os === "windows") {
    const base = env.LOCALAPPDATA ||
      (env.USERPROFILE ? `${trim(env.USERPROFILE)}\\AppData\\Local` : "");
    if (!base) throw new Error("tilings cache: neither LOCALAPPDATA nor USERPROFILE is set");
    return `${trim(base)}\\wd-explr\\tilings.json`;
  }
  const home = env.HOME ? trim(env.HOME) : "";
  if (os === "darwin") {
    if (!home) throw new Error("tilings cache: HOME is not set");
    return `${home}/Library/Caches/wd-explr/tilings.json`;
  }
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && xdg.startsWith("/")) return `${trim(xdg)}/wd-explr/tilings.json`;
  if (!home) throw new Error("tilings cache: neither XDG_CACHE_HOME nor HOME is set");
  return `${home}/.cache/wd-explr/tilings.json`;
}

/**
 * Reads the entries for `identity` from `path`. A missing file gives an empty map and no line;
 * an unreadable, non-JSON or schema-invalid file, or one with no tuning for this identity
 * (another version, adapter, driver or implementation), gives an empty map and exactly one line
 * through `log` naming the file and the problem, ending "; default tilings used" (for the stale
 * case, what the file has). Never throws for a bad file.
 */
export async function loadTunedTilings(
  path: string,
  identity: TuneIdentity,
  log: (line: string) => void,
): Promise<Map<string, TunedEntry>> {
  const read = await readCache(path);
  if (read.problem) {
    log(`tilings cache ${path} ${read.problem}; default tilings used`);
    return new Map();
  }
  if (!read.file) return new Map();
  const tunings = read.file.tunings;
  const mine = tunings.find((t) => identityKey(t) === identityKey(identity));
  if (!mine) {
    const has = tunings.length > 0 ? tunings.map(describe).join("; ") : "none";
    log(
      `tilings cache ${path} has no tilings for ${describe(identity)} (it has: ${has}); ` +
        "default tilings used",
    );
    return new Map();
  }
  return new Map(Object.entries(mine.kernels));
}

/**
 * Writes `entries` as the tuning of `identity` into `path` (creating its folder): replaces that
 * identity's section, drops sections of the same implementation+adapter+driver with another
 * version, keeps the other adapters' sections (a missing, corrupt or invalid existing file is
 * replaced). Atomic (through a temporary file renamed over `path`). Sections sorted by identity,
 * kernel keys and tiling fields sorted, each entry's fields in the format's order, 2-space
 * indented, so the file is stable. Throws if an entry would not pass the schema (a bad tiling
 * value, a negative or non-finite time), so the file written always loads.
 */
export async function saveTunedTilings(
  path: string,
  identity: TuneIdentity,
  entries: Map<string, TunedEntry>,
): Promise<void> {
  const existing = (await readCache(path)).file?.tunings ?? [];
  const device = (t: TuneIdentity) => JSON.stringify([t.implementation, t.adapter, t.driver]);
  const kept = existing.filter((t) => device(t) !== device(identity));
  for (const [key, e] of entries) {
    const r = entrySchema.safeParse(e);
    if (!r.success) {
      throw new Error(
        `tilings cache: not saving kernel ${JSON.stringify(key)}: ${firstIssue(r.error)}`,
      );
    }
  }
  const kernels = Object.fromEntries(
    [...entries].sort(([a], [b]) => compare(a, b)).map(([k, e]) => [k, normalEntry(e)]),
  );
  const mine: Tuning = {
    implementation: identity.implementation,
    adapter: identity.adapter,
    driver: identity.driver,
    version: identity.version,
    kernels,
  };
  const tunings = [...kept, mine].sort((a, b) => compare(identityKey(a), identityKey(b)));
  const doc: CacheFile = { format: TUNE_CACHE_FORMAT, tunings };
  await Deno.mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, JSON.stringify(doc, null, 2) + "\n");
}

/** An entry with its fields in the format's order and its tiling's fields sorted. */
function normalEntry(e: TunedEntry): TunedEntry {
  const tiling = Object.fromEntries(
    Object.entries(e.tiling).sort(([a], [b]) => compare(a, b)),
  );
  return {
    tiling,
    defaultMs: e.defaultMs,
    tunedMs: e.tunedMs,
    tried: e.tried,
    rejected: e.rejected,
    tunedAt: e.tunedAt,
  };
}

/**
 * The cache file at `path`: `file` when it is valid, `problem` (a phrase after the path) when
 * it exists but cannot be used, neither when it does not exist.
 */
async function readCache(path: string): Promise<{ file?: CacheFile; problem?: string }> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    return { problem: `cannot be read: ${readFailure(e)}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { problem: `is not JSON: ${oneLine((e as Error).message)}` };
  }
  const format = typeof json === "object" && json !== null && !Array.isArray(json)
    ? (json as Record<string, unknown>).format
    : undefined;
  if (format !== TUNE_CACHE_FORMAT) {
    const got = format === undefined ? "no format" : `format ${JSON.stringify(format)}`;
    return { problem: `is not a tilings cache (${got}, expected "${TUNE_CACHE_FORMAT}")` };
  }
  const r = fileSchema.safeParse(json);
  if (!r.success) return { problem: `is invalid: ${firstIssue(r.error)}` };
  return { file: r.data };
}

/** Why a read failed, in a few words (Deno's permission messages name its flags). */
function readFailure(e: unknown): string {
  if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
    return "not allowed to read it";
  }
  // "Is a directory (os error 21): read '...'" -> "Is a directory"
  return oneLine(e instanceof Error ? e.message.split(" (os error")[0] : String(e));
}

/** A zod error's first issue as `<field>: <problem>`. */
function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  // tunings[0].kernels["matmul 64x64"].tiling.tm
  const field = issue.path.map((k) =>
    typeof k === "number"
      ? `[${k}]`
      : /^[A-Za-z_$][\w$]*$/.test(String(k))
      ? `.${String(k)}`
      : `[${JSON.stringify(String(k))}]`
  ).join("").replace(/^\./, "");
  return oneLine(`${field || "(top level)"}: ${issue.message}`);
}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, " ");
}

/** The identity as one comparable string. */
function identityKey(t: TuneIdentity): string {
  return JSON.stringify([t.implementation, t.adapter, t.driver, t.version]);
}

/**
 * The identity in words: `llvmpipe (LLVM 15.0.6, 256 bits), driver Mesa 23 (deno), version
 * 0.5.0` (no driver part when the driver is empty).
 */
function describe(t: TuneIdentity): string {
  const driver = t.driver ? `, driver ${t.driver}` : "";
  return `${t.adapter}${driver} (${t.implementation}), version ${t.version}`;
}

/** Code-unit order, the same in every locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
