/**
 * Adapter lists without a GPU: resolving `--adapter` by index and by name against a given list,
 * reading Dawn's list of names, and the Vulkan driver manifests a listing probes.
 */

import {
  type AdapterEntry,
  parseDawnAdapterNames,
  resolveAdapter,
  vulkanDriverManifests,
} from "./adapters.ts";
import { GpuUnavailableError } from "./webgpu.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";

/** An adapter entry with the fields resolution looks at. */
function entry(index: number, name: string, driver: string, extra: Partial<AdapterEntry> = {}) {
  return {
    index,
    name,
    description: name,
    vendor: "",
    architecture: "",
    device: "",
    fallback: false,
    features: [],
    limits: {},
    driver,
    ...extra,
  } satisfies AdapterEntry;
}

const LIST: AdapterEntry[] = [
  entry(0, "SwiftShader Device (Subzero)", "/usr/lib/chromium/vk_swiftshader_icd.json", {
    description: "SwiftShader driver 5.0.0",
  }),
  entry(1, "llvmpipe (LLVM 15.0.6, 256 bits)", "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"),
  entry(2, "NVIDIA H100 80GB HBM3", "/etc/vulkan/icd.d/nvidia_icd.json"),
  entry(3, "NVIDIA H100 80GB HBM3", "/etc/vulkan/icd.d/nvidia_icd.json", { sameAs: 2 }),
];

/** The one-line GpuUnavailableError `fn` throws; fails unless it has every fragment. */
function unavailable(fn: () => unknown, ...fragments: string[]): string {
  try {
    fn();
  } catch (e) {
    assert(e instanceof GpuUnavailableError, `expected a GpuUnavailableError, got ${e}`);
    assert(!/[\r\n]/.test(e.message), `one line: ${JSON.stringify(e.message)}`);
    for (const f of fragments) assert(e.message.includes(f), `"${e.message}" lacks "${f}"`);
    return e.message;
  }
  throw new Error(`expected an error with ${fragments.join(", ")}`);
}

Deno.test("resolveAdapter: by index, and by a case-insensitive part of name or description", () => {
  assertEquals(resolveAdapter(LIST, "0", "dawn").index, 0);
  assertEquals(resolveAdapter(LIST, " 1 ", "deno").index, 1);
  assertEquals(resolveAdapter(LIST, "swiftshader", "dawn").index, 0);
  assertEquals(resolveAdapter(LIST, "LLVMPIPE", "deno").index, 1);
  assertEquals(resolveAdapter(LIST, "driver 5.0", "dawn").index, 0, "the description counts");
  // Identical GPUs: the name reaches the first, which is the one WebGPU would take.
  assertEquals(resolveAdapter(LIST, "h100", "dawn").index, 2);
});

Deno.test("resolveAdapter: no match, a missing index or several adapters: one line listing them", () => {
  const names = "0 SwiftShader Device (Subzero), 1 llvmpipe (LLVM 15.0.6, 256 bits), " +
    "2 NVIDIA H100 80GB HBM3, 3 NVIDIA H100 80GB HBM3";
  unavailable(
    () => resolveAdapter(LIST, "radeon", "deno"),
    '--adapter "radeon": no adapter',
    names,
  );
  unavailable(() => resolveAdapter(LIST, "7", "deno"), "--adapter 7: no adapter 7", names);
  unavailable(
    () => resolveAdapter(LIST, "i", "deno"),
    '--adapter "i": matches 3 adapters (0 SwiftShader Device (Subzero), 1 llvmpipe',
    "give its index",
  );
  unavailable(() => resolveAdapter([], "0", "dawn"), "dawn sees no adapter");
  unavailable(
    () => resolveAdapter(LIST, "3", "dawn"),
    "same name as adapter 2",
    "cannot tell identical GPUs apart",
    "docs/adapters.md",
  );
});

Deno.test("parseDawnAdapterNames: the names after 'Available adapters:', quotes and all", () => {
  const message = "no adapter with backend 'vulkan' and name 'x' found\nAvailable adapters:\n" +
    " * backend: 'vulkan', name: 'SwiftShader Device (Subzero)'\n" +
    " * backend: 'vulkan', name: 'GPU 'quoted''";
  assertEquals(parseDawnAdapterNames(message), ["SwiftShader Device (Subzero)", "GPU 'quoted'"]);
  assertEquals(parseDawnAdapterNames("unrecognised backend 'x'"), null);
});

Deno.test("vulkanDriverManifests: VK_DRIVER_FILES wins, folders expand, else the loader's folders", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const f of ["b.json", "a.json", "notes.txt"]) {
      await Deno.writeTextFile(`${dir}/${f}`, "{}");
    }
    assertEquals(
      vulkanDriverManifests({ VK_DRIVER_FILES: `${dir}:/x/c.json`, VK_ICD_FILENAMES: "/ignored" }),
      [`${dir}/a.json`, `${dir}/b.json`, "/x/c.json"],
    );
    assertEquals(vulkanDriverManifests({ VK_ICD_FILENAMES: `${dir}/b.json` }), [`${dir}/b.json`]);
    assertEquals(
      vulkanDriverManifests({
        VK_ICD_FILENAMES: "/x/c.json",
        VK_ADD_DRIVER_FILES: `${dir}/a.json`,
      }),
      [`${dir}/a.json`, "/x/c.json"],
    );
    // The loader's folders: XDG_DATA_DIRS among them.
    const found = vulkanDriverManifests({ XDG_DATA_DIRS: dir.replace(/\/[^/]*$/, "/none") });
    assert(found.every((p) => p.endsWith(".json")), `manifests only: ${found}`);
    await Deno.mkdir(`${dir}/vulkan/icd.d`, { recursive: true });
    await Deno.writeTextFile(`${dir}/vulkan/icd.d/z.json`, "{}");
    assert(
      vulkanDriverManifests({ XDG_DATA_DIRS: dir }).includes(`${dir}/vulkan/icd.d/z.json`),
      "XDG_DATA_DIRS/vulkan/icd.d is searched",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
