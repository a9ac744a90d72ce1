/**
 * `deno task gpus` and `--adapter` as a user meets them, in subprocesses, on this machine's
 * Vulkan drivers: Deno lists Mesa's lavapipe and Dawn Chromium's SwiftShader (when those
 * drivers are installed; the test says so and passes otherwise), `--adapter` picks each by
 * name, and a name that matches nothing is one line listing the adapters.
 */

import { GPU_PERMISSIONS } from "../shaders/webgpu.ts";
import { assert } from "../stages/data/test_fixtures.ts";
import { SWIFTSHADER_MANIFEST, vulkanDriverManifests } from "../shaders/adapters.ts";
import { formatListing, type Listing, vendorText } from "./gpus.ts";

const GPUS = new URL("./gpus.ts", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const opts = { sanitizeResources: false, sanitizeOps: false };
/** The permissions `deno task train` and `deno task gpus` pass. */
const PERMISSIONS = GPU_PERMISSIONS;

async function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...args],
    env: { XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * The `adapter:` line of `deno run main.ts ...args` on stderr, or the error line; the trainer is
 * stopped once the line is there (the selection is done by then; training adds seconds).
 */
async function adapterLine(
  args: string[],
  env: Record<string, string>,
): Promise<{ line: string; stderr: string; code: number | null; stdout: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, MAIN, "--steps", "1", "--runs", "A,B", "--quiet", ...args],
    env: { XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Response(child.stdout).text();
  let stderr = "", line = "";
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  for (let r = await lines.read(); !r.done; r = await lines.read()) {
    stderr += r.value;
    line = stderr.split("\n").find((l) => /^(adapter|error):/.test(l)) ?? "";
    if (line) break;
  }
  lines.releaseLock();
  const stopped = line.startsWith("adapter:");
  if (stopped) child.kill("SIGKILL");
  await child.stderr.cancel().catch(() => {});
  const status = await child.status;
  return { line, stderr, code: stopped ? null : status.code, stdout: await stdout };
}

/** The environment with the loader's own driver search (no driver variables of the caller). */
const DEFAULT_DRIVERS = { VK_DRIVER_FILES: "", VK_ICD_FILENAMES: "", VK_ADD_DRIVER_FILES: "" };

/** This machine's manifests of lavapipe and SwiftShader, or null (with a message) if absent. */
function cpuDrivers(): { lavapipe: string; swiftshader: string } | null {
  const manifests = vulkanDriverManifests({ ...Deno.env.toObject(), ...DEFAULT_DRIVERS });
  const lavapipe = manifests.find((m) => /\/lvp_icd\.[^/]*json$/.test(m));
  const swiftshader = manifests.find((m) => m === SWIFTSHADER_MANIFEST);
  if (!lavapipe || !swiftshader) {
    console.error(
      "skipped: needs Mesa's lavapipe (apt-get install -y mesa-vulkan-drivers) and Chromium's " +
        `SwiftShader (apt-get install -y chromium); found ${manifests.join(", ") || "no driver"}`,
    );
    return null;
  }
  return { lavapipe, swiftshader };
}

Deno.test({
  ...opts,
  name:
    "deno task gpus --json: lavapipe under deno, SwiftShader under dawn, Dawn refusing lavapipe",
  async fn() {
    const drivers = cpuDrivers();
    if (!drivers) return;
    const r = await run([
      "--allow-read",
      "--allow-env",
      "--allow-ffi",
      "--allow-run",
      GPUS,
      "--json",
    ], DEFAULT_DRIVERS);
    assert(r.code === 0, `exit ${r.code}: ${r.stderr}`);
    const { implementations } = JSON.parse(r.stdout) as { implementations: Listing[] };
    const [deno, dawn] = implementations;
    assert(deno.webgpu === "deno" && "adapters" in deno, `deno: ${JSON.stringify(deno)}`);
    assert(dawn.webgpu === "dawn" && "adapters" in dawn, `dawn: ${JSON.stringify(dawn)}`);
    const lvp = deno.adapters.find((a) => a.driver === drivers.lavapipe);
    assert(
      lvp !== undefined && lvp.name.startsWith("llvmpipe"),
      `deno lists lavapipe: ${r.stdout}`,
    );
    // Without --adapter: one of those listed (lavapipe here; a GPU where there is one).
    assert(deno.defaultIndex !== null, "Deno's default adapter is listed");
    assert(lvp.limits.maxStorageBufferBindingSize > 0, "with its limits");
    const sw = dawn.adapters.find((a) => a.driver === drivers.swiftshader);
    assert(
      sw !== undefined && sw.name === "SwiftShader Device (Subzero)",
      `dawn lists SwiftShader: ${r.stdout}`,
    );
    assert(dawn.defaultIndex !== null, "Dawn's default is listed (SwiftShader without a GPU)");
    const refused = dawn.drivers.find((d) => d.driver === drivers.lavapipe);
    assert(
      refused !== undefined && refused.adapters === 0 && /Dawn refuses it/.test(refused.note ?? ""),
      "lavapipe note",
    );
    // The table says the same.
    const table = formatListing(dawn);
    assert(
      table.includes("SwiftShader Device (Subzero)") && table.includes("Dawn refuses it"),
      table,
    );
  },
});

Deno.test({
  ...opts,
  name: "deno task gpus: an implementation that cannot load is one line, the other still listed",
  async fn() {
    const r = await run(["--allow-read", "--allow-env", "--allow-run", GPUS]);
    assert(r.code === 0, `exit ${r.code}: ${r.stderr}`);
    const dawn = r.stdout.split("\n").filter((l) => l.startsWith("dawn:"));
    assert(dawn.length === 1 && dawn[0].includes("--allow-ffi"), `dawn line: ${r.stdout}`);
    assert(r.stdout.includes("deno: Deno"), `deno listed: ${r.stdout}`);
  },
});

Deno.test({
  ...opts,
  name: "--adapter: llvmpipe on deno, swiftshader on dawn; a name matching nothing lists the names",
  async fn() {
    const drivers = cpuDrivers();
    if (!drivers) return;
    const [lvp, sw, none] = await Promise.all([
      adapterLine(["--adapter", "llvmpipe", "--webgpu", "deno"], DEFAULT_DRIVERS),
      adapterLine(["--adapter", "swiftshader", "--webgpu", "dawn"], DEFAULT_DRIVERS),
      adapterLine(["--adapter", "nonexistent", "--webgpu", "deno"], DEFAULT_DRIVERS),
    ]);
    assert(/^adapter: llvmpipe .*\(deno\)$/.test(lvp.line), `llvmpipe: ${lvp.stderr}`);
    assert(sw.line === "adapter: SwiftShader driver 5.0.0 (dawn)", `swiftshader: ${sw.stderr}`);
    assert(!sw.stderr.includes("Warning:"), `no Dawn warning with --adapter: ${sw.stderr}`);
    const errors = none.stderr.split("\n").filter((l) => l.startsWith("error:"));
    assert(none.code === 2 && errors.length === 1 && none.stdout === "", none.stderr);
    for (const f of ['--adapter "nonexistent": no adapter matches', "llvmpipe", "SwiftShader"]) {
      assert(errors[0].includes(f), `${errors[0]} lacks ${f}`);
    }
  },
});

Deno.test("vendorText: PCI ids named, Dawn's names as they are", () => {
  assert(vendorText({ vendor: "65541", architecture: "" }) === "Mesa 0x10005", "Mesa");
  assert(vendorText({ vendor: "4318", architecture: "" }) === "NVIDIA 0x10de", "NVIDIA");
  assert(
    vendorText({ vendor: "google", architecture: "swiftshader" }) === "google/swiftshader",
    "",
  );
  assert(vendorText({ vendor: "", architecture: "" }) === "-", "unknown");
});
