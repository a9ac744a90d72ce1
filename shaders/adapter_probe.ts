/**
 * The child process of an adapter listing (`listAdapters` in adapters.ts): prints one JSON line
 * `{"adapters": [...]}` with what `deno|dawn` sees under this process's Vulkan drivers ("list",
 * every adapter; the parent names one driver manifest) or takes by default ("default").
 * Errors go into the line as `error`, so the parent shows them beside the driver.
 *
 * Usage: deno run --allow-env --allow-read [--allow-ffi] adapter_probe.ts deno|dawn list|default
 *
 * @module
 */

import { probeAdapters, type ProbedAdapter, probeDefault } from "./adapters.ts";
import { isImplementation } from "./webgpu.ts";

if (import.meta.main) {
  const [webgpu, mode] = Deno.args;
  let out: { adapters: ProbedAdapter[]; error?: string };
  if (!isImplementation(webgpu ?? "") || (mode !== "list" && mode !== "default")) {
    out = { adapters: [], error: `usage: adapter_probe.ts deno|dawn list|default` };
  } else {
    try {
      const impl = webgpu as "deno" | "dawn";
      out = { adapters: await (mode === "list" ? probeAdapters(impl) : probeDefault(impl)) };
    } catch (e) {
      const message = (e instanceof Error ? e.message : String(e)).split("\n")[0];
      out = { adapters: [], error: message };
    }
  }
  console.log(JSON.stringify(out));
  // Dawn's instances keep the event loop alive (dawn.node's README, "Lifetime").
  Deno.exit(0);
}
