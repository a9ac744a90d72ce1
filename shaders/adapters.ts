/**
 * Finding the adapter a {@link GpuChoice} names, on either WebGPU implementation, and listing
 * the adapters each implementation sees (`deno task gpus`).
 *
 * Neither implementation lets a program pick among adapters through the WebGPU API: Deno's
 * `navigator.gpu.requestAdapter` returns one adapter, and Dawn's Node-API build returns one too
 * (its `adapter=NAME` flag picks the first whose device name contains NAME, and only a failed
 * pick lists the names). What both do honour is the Vulkan loader's driver list: the loader reads
 * `VK_DRIVER_FILES` (older name `VK_ICD_FILENAMES`) when an instance is created, and Deno creates
 * its one wgpu instance at the first `requestAdapter` of the process, Dawn one per `create()`.
 * So:
 *
 * - **listing** probes each Vulkan driver manifest ({@link vulkanDriverManifests}) in a child
 *   process whose environment names only that manifest (`shaders/adapter_probe.ts`); Deno sees
 *   one adapter per driver, Dawn every adapter of the driver (its list of names, then each by
 *   name). The index of an adapter is its place in that list: drivers by path, then Dawn's order;
 * - **selection** (`--adapter NAME-or-INDEX`) resolves the choice against the list
 *   ({@link resolveAdapter}), sets the loader's variables in this process to that adapter's
 *   manifest before the first `requestAdapter`, and on Dawn passes `adapter=<device name>`;
 * - **the default** (no `--adapter`) leaves the environment alone, except that Dawn, which
 *   refuses Mesa's lavapipe, falls back to Chromium's SwiftShader when no driver it accepts is
 *   installed and the user did not name the drivers.
 *
 * Identical GPUs behind one driver share a name and cannot be told apart here: a scheduler gives
 * each process its GPU (docs/adapters.md).
 *
 * @module
 */

import {
  type GpuChoice,
  GpuUnavailableError,
  loadDawn,
  type WebGpuImplementation,
} from "./webgpu.ts";

const LAVAPIPE_HINT =
  "install a Vulkan driver (Debian/Ubuntu: apt-get install -y mesa-vulkan-drivers for the lavapipe CPU adapter)";

/** Debian's chromium-common ships SwiftShader, a CPU Vulkan driver that Dawn accepts. */
export const SWIFTSHADER_MANIFEST = "/usr/lib/chromium/vk_swiftshader_icd.json";

const DAWN_HINT = "Dawn found no Vulkan adapter it accepts (it refuses Mesa's lavapipe); " +
  "install Debian's chromium for its SwiftShader CPU adapter (apt-get install -y chromium; " +
  "then --webgpu dawn uses it, or name it: --adapter swiftshader) or your GPU's Vulkan driver";

/** The limits the kernels depend on, as `deno task gpus` shows them. */
export const KERNEL_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxStorageBuffersPerShaderStage",
  "minStorageBufferOffsetAlignment",
  "maxComputeWorkgroupsPerDimension",
] as const;

/** The features `deno task gpus` shows a column for. */
export const FEATURES_OF_INTEREST = ["shader-f64", "subgroups", "timestamp-query"] as const;

/** One adapter as a probe reports it. */
export interface ProbedAdapter {
  /** The name `--adapter` matches: Vulkan's device name (Deno: `info.description`). */
  name: string;
  /** `info.description` (Dawn: the driver's, e.g. "SwiftShader driver 5.0.0"). */
  description: string;
  /** `info.vendor`: Deno gives the PCI vendor id in decimal, Dawn a name. */
  vendor: string;
  architecture: string;
  /** `info.device`: Deno gives the PCI device id in decimal, Dawn a slug of the name. */
  device: string;
  /** `info.isFallbackAdapter`: a software (CPU) adapter or one with performance caveats. */
  fallback: boolean;
  features: string[];
  limits: Record<string, number>;
}

/** One adapter of an implementation's list. */
export interface AdapterEntry extends ProbedAdapter {
  /** Its place in the implementation's list: `--adapter INDEX`. */
  index: number;
  /** The Vulkan driver manifest it comes from. */
  driver: string;
  /** The index of an earlier adapter of the same driver with the same name, if any. */
  sameAs?: number;
}

/** What one driver manifest gave. */
export interface DriverReport {
  driver: string;
  adapters: number;
  /** Why it gave none, when it said (Dawn: "Vulkan shaderUniform*ArrayDynamicIndexing required"). */
  note?: string;
}

/** What one implementation sees. */
export interface AdapterList {
  webgpu: WebGpuImplementation;
  adapters: AdapterEntry[];
  drivers: DriverReport[];
  /** The index of the adapter the implementation takes without `--adapter` (null: not listed). */
  defaultIndex: number | null;
  /** The adapter taken without `--adapter`, listed or not (Deno's GL fallback is not); or null. */
  defaultAdapter: ProbedAdapter | null;
}

// ---------------------------------------------------------------------------------------------
// Driver manifests

const exists = (path: string) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
};

/** The `*.json` files of `dir`, or none when it cannot be read. */
function manifestsIn(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)]
      .filter((e) => (e.isFile || e.isSymlink) && e.name.endsWith(".json"))
      .map((e) => `${dir.replace(/\/+$/, "")}/${e.name}`);
  } catch {
    return [];
  }
}

/** A colon-separated list of manifests and folders, as the loader reads its variables. */
function expand(list: string): string[] {
  return list.split(":").filter((p) => p !== "").flatMap((p) => {
    try {
      return Deno.statSync(p).isDirectory ? manifestsIn(p) : [p];
    } catch {
      return [p]; // reported as a driver without adapters
    }
  });
}

/**
 * The Vulkan driver manifests a listing probes, sorted by path: those of `VK_DRIVER_FILES`
 * (or the older `VK_ICD_FILENAMES`) when set, which replace the loader's search, plus
 * `VK_ADD_DRIVER_FILES`; else the folders the Linux loader searches (XDG config and data
 * folders, `/etc/vulkan/icd.d`, `/usr/share/vulkan/icd.d`, ...) plus Chromium's SwiftShader
 * manifest when it is installed (outside the loader's search; Dawn's only CPU adapter here).
 */
export function vulkanDriverManifests(
  env: Record<string, string | undefined> = Deno.env.toObject(),
): string[] {
  const given = env.VK_DRIVER_FILES || env.VK_ICD_FILENAMES;
  const found: string[] = [];
  if (given) {
    found.push(...expand(given));
  } else {
    const home = env.HOME;
    const configDirs = (env.XDG_CONFIG_DIRS || "/etc/xdg").split(":");
    const dataHome = env.XDG_DATA_HOME || (home ? `${home}/.local/share` : "");
    const dataDirs = (env.XDG_DATA_DIRS || "/usr/local/share:/usr/share").split(":");
    const dirs = [
      ...(env.XDG_CONFIG_HOME || home
        ? [`${env.XDG_CONFIG_HOME || `${home}/.config`}/vulkan/icd.d`]
        : []),
      ...configDirs.map((d) => `${d}/vulkan/icd.d`),
      "/etc/vulkan/icd.d",
      ...(dataHome ? [`${dataHome}/vulkan/icd.d`] : []),
      ...dataDirs.map((d) => `${d}/vulkan/icd.d`),
    ].filter((d) => d.startsWith("/"));
    for (const d of new Set(dirs)) found.push(...manifestsIn(d));
    if (exists(SWIFTSHADER_MANIFEST)) found.push(SWIFTSHADER_MANIFEST);
  }
  if (env.VK_ADD_DRIVER_FILES) found.push(...expand(env.VK_ADD_DRIVER_FILES));
  return [...new Set(found)].sort();
}

/** Whether the user named the Vulkan drivers (then the default stays theirs). */
function driversNamed(): boolean {
  return ["VK_DRIVER_FILES", "VK_ICD_FILENAMES", "VK_ADD_DRIVER_FILES"].some((v) =>
    !!Deno.env.get(v)
  );
}

/** The environment that makes the loader see only `manifest`. */
export function driverEnv(manifest: string): Record<string, string> {
  return { VK_DRIVER_FILES: manifest, VK_ICD_FILENAMES: manifest };
}

/**
 * Points this process's Vulkan loader at `manifest` alone. Takes effect only for instances
 * created afterwards: Deno's before its first `requestAdapter`, Dawn's at its next `create()`.
 */
function pinDriver(manifest: string, webgpu: WebGpuImplementation): void {
  for (const [k, v] of Object.entries(driverEnv(manifest))) Deno.env.set(k, v);
  Deno.env.delete("VK_ADD_DRIVER_FILES");
  // Vulkan only: with a driver that fails, wgpu would otherwise fall back to its GL backend.
  if (webgpu === "deno") Deno.env.set("DENO_WEBGPU_BACKEND", "vulkan");
}

// ---------------------------------------------------------------------------------------------
// Probing (in this process; the child processes run these)

const DAWN_BASE_FLAGS = ["backend=vulkan"];
/** An adapter name no device has: Dawn then rejects, listing the names it has. */
const NO_SUCH_ADAPTER = "wd-explr: list the adapters";

/** The names in Dawn's "no adapter ... found\nAvailable adapters:\n * backend: ..." message. */
export function parseDawnAdapterNames(message: string): string[] | null {
  const lines = message.split("\n");
  const at = lines.findIndex((l) => l.trim() === "Available adapters:");
  if (at < 0) return null;
  return lines.slice(at + 1).flatMap((l) => {
    const m = /^\s*\* backend: '[^']*', name: '(.*)'\s*$/.exec(l);
    return m ? [m[1]] : [];
  });
}

function describe(adapter: GPUAdapter, name?: string): ProbedAdapter {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const limits: Record<string, number> = {};
  for (const k of KERNEL_LIMITS) {
    limits[k] = (adapter.limits as unknown as Record<string, number>)[k];
  }
  return {
    name: name ?? (info.description || info.device || info.vendor || "unknown adapter"),
    description: info.description ?? "",
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    device: info.device ?? "",
    fallback: info.isFallbackAdapter === true,
    features: [...adapter.features].sort(),
    limits,
  };
}

/** The names of Dawn's adapters under the current drivers; [] when it has none. */
async function dawnAdapterNames(create: (flags: string[]) => GPU): Promise<string[]> {
  try {
    const none = await create([...DAWN_BASE_FLAGS, `adapter=${NO_SUCH_ADAPTER}`]).requestAdapter();
    if (none) throw new Error(`Dawn gave an adapter named "${NO_SUCH_ADAPTER}"`);
    return []; // Dawn resolves null when it has no adapter at all
  } catch (e) {
    const names = parseDawnAdapterNames(e instanceof Error ? e.message : String(e));
    if (names === null) throw e;
    return names;
  }
}

/**
 * Every adapter the implementation sees under this process's current Vulkan drivers (set by
 * the parent): Deno's one, or each of Dawn's by name. Identical names repeat their adapter.
 */
export async function probeAdapters(webgpu: WebGpuImplementation): Promise<ProbedAdapter[]> {
  if (webgpu === "deno") {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    return adapter ? [describe(adapter)] : [];
  }
  const create = await loadDawn();
  const names = await dawnAdapterNames(create);
  const out: ProbedAdapter[] = [];
  for (const name of names) {
    const adapter = await create([...DAWN_BASE_FLAGS, `adapter=${name}`]).requestAdapter({
      powerPreference: "high-performance",
    });
    if (adapter) out.push(describe(adapter, name));
  }
  return out;
}

/** The adapter the implementation takes by default (what `--adapter` left out gives). */
export async function probeDefault(webgpu: WebGpuImplementation): Promise<ProbedAdapter[]> {
  try {
    const { adapter } = await requestChosenAdapter({ webgpu });
    return [describe(adapter)];
  } catch (e) {
    if (e instanceof GpuUnavailableError) return [];
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Listing (child processes)

const PROBE = new URL("./adapter_probe.ts", import.meta.url);
const CONFIG = new URL("../deno.json", import.meta.url);

/** Throws a one-line error unless this process may start the probes. */
function checkRunPermission(what: string): void {
  if (Deno.permissions.querySync({ name: "run", command: Deno.execPath() }).state !== "granted") {
    throw new GpuUnavailableError(
      `${what} probes each Vulkan driver in a child process and needs --allow-run (the deno ` +
        `tasks pass it)`,
    );
  }
}

/** Messages of a driver that loaded but found no device (wgpu's, the Vulkan loader's). */
const NO_DEVICE = /Initialization of an object has failed|Failed to detect any valid GPUs/;
/** Messages of a driver the loader could not load (the Vulkan loader's, through Dawn). */
const NOT_LOADED = /Failed to open JSON file|Found no drivers|VK_ERROR_INCOMPATIBLE_DRIVER/;

/**
 * Why a child saw no adapter, from its stderr: "no device", "the driver did not load", Dawn's
 * refusal ("Warning: <why>" then " - While initializing adapter"), or its first line.
 */
function stderrNote(stderr: string, webgpu: WebGpuImplementation): string | undefined {
  // deno-lint-ignore no-control-regex
  const lines = stderr.replace(/\x1b\[[0-9;]*m/g, "").split("\n").map((l) => l.trim())
    .filter((l) => l !== "");
  if (lines.some((l) => NO_DEVICE.test(l))) return "no device";
  const notLoaded = lines.find((l) => NOT_LOADED.test(l));
  if (notLoaded) return `the driver did not load (${notLoaded.replace(/^Warning:\s*/, "")})`;
  const at = lines.findIndex((l) => l.startsWith("- While initializing adapter"));
  if (webgpu === "dawn" && at > 0 && lines[at - 1].startsWith("Warning:")) {
    return `Dawn refuses it: ${lines[at - 1].replace(/^Warning:\s*/, "")}`;
  }
  return lines.find((l) => l.startsWith("Warning:"))?.replace(/^Warning:\s*/, "") ?? lines[0];
}

/**
 * Runs the probe in a child process: `mode` "list" under `manifest` alone, "default" under
 * this process's environment.
 */
async function runProbe(
  webgpu: WebGpuImplementation,
  mode: "list" | "default",
  manifest?: string,
): Promise<{ adapters: ProbedAdapter[]; note?: string }> {
  if (manifest && !exists(manifest)) return { adapters: [], note: "no such file" };
  const env = Deno.env.toObject();
  if (manifest) {
    delete env.VK_ADD_DRIVER_FILES;
    Object.assign(env, driverEnv(manifest));
    if (webgpu === "deno") env.DENO_WEBGPU_BACKEND = "vulkan";
  }
  env.NO_COLOR = "1";
  const args = ["run", "--quiet", "--no-prompt", "--allow-env", "--allow-read"];
  if (webgpu === "dawn") args.push("--allow-ffi");
  if (CONFIG.protocol === "file:") args.push("--config", CONFIG.pathname);
  args.push(PROBE.href, webgpu, mode);
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout), stderr = dec.decode(out.stderr);
  const line = stdout.split("\n").find((l) => l.startsWith("{"));
  if (out.code !== 0 || line === undefined) {
    const why = stderrNote(stderr, webgpu) ?? `exit ${out.code}`;
    return { adapters: [], note: `probe failed: ${why}` };
  }
  const parsed = JSON.parse(line) as { adapters: ProbedAdapter[]; error?: string };
  const note = parsed.error ??
    (parsed.adapters.length === 0 ? stderrNote(stderr, webgpu) : undefined);
  return { adapters: parsed.adapters, note };
}

/** Whether `a` is the adapter `p` describes (same implementation). */
function sameAdapter(a: ProbedAdapter, p: ProbedAdapter): boolean {
  return a.description === p.description && a.device === p.device && a.vendor === p.vendor;
}

/**
 * Every adapter `webgpu` sees: each Vulkan driver manifest probed in a child process (in
 * parallel), numbered in the order drivers by path, then the driver's adapters; and (unless
 * `findDefault` is false) which one the implementation takes by default. Needs --allow-run.
 */
export async function listAdapters(
  webgpu: WebGpuImplementation,
  findDefault = true,
): Promise<AdapterList> {
  checkRunPermission(`listing ${webgpu}'s adapters`);
  const manifests = vulkanDriverManifests();
  const [defaults, ...probes] = await Promise.all([
    findDefault ? runProbe(webgpu, "default") : { adapters: [] },
    ...manifests.map((m) => runProbe(webgpu, "list", m)),
  ]);
  const adapters: AdapterEntry[] = [];
  const drivers: DriverReport[] = [];
  manifests.forEach((driver, i) => {
    const { adapters: found, note } = probes[i];
    drivers.push({ driver, adapters: found.length, ...(note ? { note } : {}) });
    for (const p of found) {
      const twin = adapters.find((a) => a.driver === driver && a.name === p.name);
      adapters.push({
        index: adapters.length,
        driver,
        ...p,
        ...(twin ? { sameAs: twin.sameAs ?? twin.index } : {}),
      });
    }
  });
  const d = defaults.adapters[0];
  const match = d ? adapters.find((a) => a.sameAs === undefined && sameAdapter(a, d)) : undefined;
  return {
    webgpu,
    adapters,
    drivers,
    defaultIndex: match?.index ?? null,
    defaultAdapter: d ?? null,
  };
}

// ---------------------------------------------------------------------------------------------
// Selection

/** "0 llvmpipe (LLVM 15.0.6, 256 bits), 1 SwiftShader Device (Subzero)". */
export function adapterNames(adapters: readonly AdapterEntry[]): string {
  return adapters.map((a) => `${a.index} ${a.name}`).join(", ");
}

/**
 * The adapter `wanted` names in `adapters`: an index (digits), or a case-insensitive
 * substring of an adapter's name or description. Throws a one-line {@link GpuUnavailableError}
 * when it names none (listing the adapters there are), several different ones, or one that
 * only an identical earlier adapter of the same driver can be reached as.
 */
export function resolveAdapter(
  adapters: readonly AdapterEntry[],
  wanted: string,
  webgpu: WebGpuImplementation,
): AdapterEntry {
  const there = adapters.length > 0
    ? `${webgpu} sees ${adapterNames(adapters)}`
    : `${webgpu} sees no adapter`;
  const text = wanted.trim();
  if (/^\d+$/.test(text)) {
    const entry = adapters.find((a) => a.index === Number(text));
    if (!entry) throw new GpuUnavailableError(`--adapter ${text}: no adapter ${text}; ${there}`);
    if (entry.sameAs !== undefined) {
      throw new GpuUnavailableError(
        `--adapter ${text}: ${entry.name} has the same name as adapter ${entry.sameAs} of the ` +
          `same driver, and WebGPU cannot tell identical GPUs apart; give each process one GPU ` +
          `(docs/adapters.md)`,
      );
    }
    return entry;
  }
  const needle = text.toLowerCase();
  const matches = adapters.filter((a) =>
    a.sameAs === undefined &&
    (a.name.toLowerCase().includes(needle) || a.description.toLowerCase().includes(needle))
  );
  if (needle === "" || matches.length === 0) {
    throw new GpuUnavailableError(
      `--adapter ${JSON.stringify(wanted)}: no adapter matches; ${there}`,
    );
  }
  if (matches.length > 1) {
    throw new GpuUnavailableError(
      `--adapter ${JSON.stringify(wanted)}: matches ${matches.length} adapters ` +
        `(${adapterNames(matches)}); give its index or more of its name`,
    );
  }
  return matches[0];
}

/** The adapter `choice` names, with a human-readable description. */
export interface ChosenAdapter {
  adapter: GPUAdapter;
  description: string;
}

/** Requests the adapter `choice` names; throws {@link GpuUnavailableError} with one line. */
export async function requestChosenAdapter(choice: GpuChoice): Promise<ChosenAdapter> {
  const adapter = choice.adapter === undefined
    ? await requestDefault(choice.webgpu)
    : await requestNamed(choice.webgpu, choice.adapter);
  const info = adapter.info;
  return {
    adapter,
    description: info.description || info.device || info.vendor || "unknown adapter",
  };
}

async function requestDefault(webgpu: WebGpuImplementation): Promise<GPUAdapter> {
  const options: GPURequestAdapterOptions = { powerPreference: "high-performance" };
  if (webgpu === "deno") {
    if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
      throw new GpuUnavailableError(`WebGPU is not available in this runtime; ${LAVAPIPE_HINT}`);
    }
    const adapter = await navigator.gpu.requestAdapter(options);
    if (!adapter) throw new GpuUnavailableError(`no WebGPU adapter found; ${LAVAPIPE_HINT}`);
    return adapter;
  }
  const create = await loadDawn();
  let adapter = await create(DAWN_BASE_FLAGS).requestAdapter(options);
  // Dawn refuses lavapipe, the CPU driver of most GPU-less machines; Chromium's SwiftShader,
  // outside the loader's search, is the CPU driver it takes. Only when no driver of the default
  // search was taken and the user did not name the drivers.
  if (!adapter && !driversNamed() && exists(SWIFTSHADER_MANIFEST)) {
    pinDriver(SWIFTSHADER_MANIFEST, "dawn");
    adapter = await create(DAWN_BASE_FLAGS).requestAdapter(options);
  }
  if (!adapter) throw new GpuUnavailableError(DAWN_HINT);
  return adapter;
}

async function requestNamed(webgpu: WebGpuImplementation, wanted: string): Promise<GPUAdapter> {
  if (webgpu === "dawn") await loadDawn(); // its one-line error before the listing's
  checkRunPermission("--adapter");
  const list = await listAdapters(webgpu, false);
  if (list.adapters.length === 0) {
    throw new GpuUnavailableError(
      `--adapter ${wanted}: ${
        webgpu === "dawn" ? DAWN_HINT : `no WebGPU adapter found; ${LAVAPIPE_HINT}`
      }`,
    );
  }
  const entry = resolveAdapter(list.adapters, wanted, webgpu);
  pinDriver(entry.driver, webgpu);
  const options: GPURequestAdapterOptions = { powerPreference: "high-performance" };
  const adapter = webgpu === "deno"
    ? await navigator.gpu.requestAdapter(options)
    : await (await loadDawn())([...DAWN_BASE_FLAGS, `adapter=${entry.name}`]).requestAdapter(
      options,
    );
  const got = adapter ? describe(adapter, entry.name) : undefined;
  if (!adapter || !got || !sameAdapter(got, entry)) {
    throw new GpuUnavailableError(
      `--adapter ${wanted}: asked for ${entry.name} (${entry.driver}) but got ` +
        `${got ? got.description : "no adapter"}` +
        (webgpu === "deno"
          ? " (Deno's WebGPU reads the driver list once, at the process's first requestAdapter)"
          : ""),
    );
  }
  return adapter;
}
