/**
 * Which WebGPU implementation the process runs on: Deno's built-in one (wgpu, with the naga
 * shader compiler) or Dawn, Chrome's (with Tint), loaded from the npm package `webgpu` (a
 * Node-API build of Dawn; needs `--allow-ffi`). Both expose the standard `GPU` object, so
 * everything above this module is implementation-blind. The choice comes from `--webgpu` or the
 * environment ({@link WEBGPU_ENV}), so `deno task test` runs the same tests on either.
 *
 * Dawn is imported only when chosen: the default never loads the addon.
 *
 * @module
 */

/** The WebGPU implementations the trainer runs on. */
export const WEBGPU_IMPLEMENTATIONS = ["deno", "dawn"] as const;

/** One of {@link WEBGPU_IMPLEMENTATIONS}. */
export type WebGpuImplementation = typeof WEBGPU_IMPLEMENTATIONS[number];

/** The environment variable that picks the implementation when no flag does. */
export const WEBGPU_ENV = "WD_WEBGPU";

/** The environment variable that picks the adapter when no flag does. */
export const ADAPTER_ENV = "WD_ADAPTER";

/** Which implementation, and which of its adapters (a name substring or an index). */
export interface GpuChoice {
  webgpu: WebGpuImplementation;
  /** A substring of the adapter's name, or its index in `deno task gpus`; undefined: default. */
  adapter?: string;
}

/** The choice the environment makes ({@link WEBGPU_ENV}, {@link ADAPTER_ENV}); throws on a bad value. */
export function gpuChoiceFromEnv(): GpuChoice {
  const webgpu = Deno.env.get(WEBGPU_ENV) || "deno";
  if (!isImplementation(webgpu)) {
    throw new Error(
      `${WEBGPU_ENV}=${webgpu}: not a WebGPU implementation (allowed: ` +
        `${WEBGPU_IMPLEMENTATIONS.join(", ")})`,
    );
  }
  const adapter = Deno.env.get(ADAPTER_ENV) || undefined;
  return { webgpu, adapter };
}

/** Whether `name` is one of {@link WEBGPU_IMPLEMENTATIONS}. */
export function isImplementation(name: string): name is WebGpuImplementation {
  return (WEBGPU_IMPLEMENTATIONS as readonly string[]).includes(name);
}

/**
 * The permissions of a `deno run` that acquires a GPU: files and environment, Dawn's addon
 * (`--allow-ffi`) and the adapter probes (`--allow-run`). The deno.json tasks grant the same.
 */
export const GPU_PERMISSIONS: readonly string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  "--allow-run",
];

/** Dawn's `create(flags)`: a `GPU` for the given Dawn flags (`backend=`, `adapter=`, ...). */
type DawnCreate = (flags: string[]) => GPU;

let dawnCreate: Promise<DawnCreate> | undefined;
const dawnInstances: GPU[] = [];

/** Loads Dawn's addon once; throws one line saying what to do when it cannot be loaded. */
export function loadDawn(): Promise<DawnCreate> {
  dawnCreate ??= (async () => {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      throw new GpuUnavailableError(
        `--webgpu dawn loads Dawn's Node-API addon (npm webgpu) and needs ` +
          `--allow-ffi (the deno tasks pass it)`,
      );
    }
    try {
      const mod = await import("webgpu");
      // Every GPU object is kept for the life of the process: once one is collected, its Dawn
      // instance is freed while the addon still polls it for events (a segfault).
      return (flags: string[]) => {
        const gpu = mod.create(flags) as GPU;
        dawnInstances.push(gpu);
        return gpu;
      };
    } catch (e) {
      const why = e instanceof Error ? e.message.split("\n")[0] : String(e);
      throw new GpuUnavailableError(
        `--webgpu dawn: cannot load Dawn, npm webgpu (${why}); Deno fetches it from the npm ` +
          `registry on first use: run \`deno install\` where the registry is reachable`,
      );
    }
  })();
  return dawnCreate;
}

/**
 * Thrown when WebGPU, the chosen implementation or an adapter is missing; the CLI exits with
 * code 2 on it.
 */
export class GpuUnavailableError extends Error {}
