/**
 * `deno task gpus`: the adapters each WebGPU implementation sees, with their index and name
 * (what `--adapter` takes), vendor, type, the features of interest and the limits the kernels
 * depend on; `*` marks the one taken without `--adapter`. Each Vulkan driver is probed in a child
 * process (shaders/adapters.ts). `--json` prints the same as JSON; an implementation that
 * cannot be loaded is one line saying why.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type AdapterEntry,
  type AdapterList,
  FEATURES_OF_INTEREST,
  listAdapters,
} from "../shaders/adapters.ts";
import {
  GpuUnavailableError,
  isImplementation,
  loadDawn,
  WEBGPU_IMPLEMENTATIONS,
  type WebGpuImplementation,
} from "../shaders/webgpu.ts";

/** One implementation's listing, or why it has none. */
export type Listing = AdapterList | { webgpu: WebGpuImplementation; error: string };

const HELP = `Usage: deno task gpus [--json] [--webgpu deno|dawn]
Lists the adapters each WebGPU implementation sees (each Vulkan driver probed in a child
process): index and name (what --adapter takes), vendor, type, features and kernel limits;
* marks the adapter taken without --adapter.

  --json            JSON instead of tables
  --webgpu NAME     only this implementation (deno or dawn)
  --help            this text`;

const TITLES: Record<WebGpuImplementation, string> = {
  deno: `Deno ${Deno.version.deno}'s built-in WebGPU (wgpu); one adapter per driver`,
  dawn: "Dawn (npm webgpu, --webgpu dawn)",
};

/** Lists `webgpu`'s adapters, or says in one line why it cannot. */
export async function listing(webgpu: WebGpuImplementation): Promise<Listing> {
  try {
    if (webgpu === "dawn") await loadDawn();
    return await listAdapters(webgpu);
  } catch (e) {
    if (!(e instanceof GpuUnavailableError)) throw e;
    return { webgpu, error: e.message };
  }
}

/** Known PCI vendor ids (Deno's `info.vendor` is the id in decimal). */
const VENDORS: Record<number, string> = {
  0x1002: "AMD",
  0x10de: "NVIDIA",
  0x8086: "Intel",
  0x13b5: "Arm",
  0x5143: "Qualcomm",
  0x106b: "Apple",
  0x1414: "Microsoft",
  0x1ae0: "Google",
  0x10005: "Mesa",
};

/** "Mesa 0x10005" for Deno's numeric vendor, "google/swiftshader" for Dawn's names. */
export function vendorText(a: Pick<AdapterEntry, "vendor" | "architecture">): string {
  if (/^\d+$/.test(a.vendor)) {
    const id = Number(a.vendor);
    const hex = `0x${id.toString(16)}`;
    return VENDORS[id] ? `${VENDORS[id]} ${hex}` : hex;
  }
  return [a.vendor, a.architecture].filter((s) => s !== "").join("/") || "-";
}

/** 134217728 -> "128 MiB"; counts as they are. */
function bytes(n: number | undefined): string {
  if (n === undefined) return "-";
  for (const [unit, size] of [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]] as const) {
    if (n >= size) {
      const v = n / size;
      return `${Number.isInteger(v) ? v : v.toFixed(1)} ${unit}`;
    }
  }
  return `${n} B`;
}

const COLUMNS: [string, (a: AdapterEntry) => string][] = [
  ["name", (a) => a.name],
  ["vendor", vendorText],
  ["type", (a) => (a.fallback ? "fallback" : "gpu")],
  ...FEATURES_OF_INTEREST.map((f) =>
    [f, (a: AdapterEntry) => (a.features.includes(f) ? "yes" : "-")] as [
      string,
      (a: AdapterEntry) => string,
    ]
  ),
  ["binding", (a) => bytes(a.limits.maxStorageBufferBindingSize)],
  ["buffer", (a) => bytes(a.limits.maxBufferSize)],
  ["wg-mem", (a) => bytes(a.limits.maxComputeWorkgroupStorageSize)],
  ["inv", (a) => String(a.limits.maxComputeInvocationsPerWorkgroup ?? "-")],
  ["bufs", (a) => String(a.limits.maxStorageBuffersPerShaderStage ?? "-")],
  ["align", (a) => String(a.limits.minStorageBufferOffsetAlignment ?? "-")],
  ["wg/dim", (a) => String(a.limits.maxComputeWorkgroupsPerDimension ?? "-")],
  ["driver", (a) => a.driver.split("/").pop() ?? a.driver],
];

const LEGEND = "limits: binding = maxStorageBufferBindingSize, buffer = maxBufferSize, " +
  "wg-mem = maxComputeWorkgroupStorageSize, inv = maxComputeInvocationsPerWorkgroup, " +
  "bufs = maxStorageBuffersPerShaderStage, align = minStorageBufferOffsetAlignment, " +
  "wg/dim = maxComputeWorkgroupsPerDimension; type fallback = isFallbackAdapter (software)";

/** The text of one implementation's listing. */
export function formatListing(l: Listing): string {
  const head = `${l.webgpu}: ${TITLES[l.webgpu]}`;
  if ("error" in l) return `${l.webgpu}: ${l.error}`;
  const lines = [
    `${head}; ${l.adapters.length} adapter${l.adapters.length === 1 ? "" : "s"}` +
    (l.adapters.length > 0 ? ", * = taken without --adapter" : ""),
  ];
  if (l.adapters.length > 0) {
    const rows = [
      ["", "#", ...COLUMNS.map(([h]) => h)],
      ...l.adapters.map((a) => [
        a.index === l.defaultIndex ? "*" : "",
        String(a.index),
        ...COLUMNS.map(([, f]) => f(a)),
      ]),
    ];
    const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
    for (const r of rows) {
      lines.push(`  ${r.map((cell, c) => cell.padEnd(widths[c])).join("  ")}`.trimEnd());
    }
  }
  for (const a of l.adapters) {
    if (a.sameAs !== undefined) {
      lines.push(
        `  ${a.index}: same name as ${a.sameAs} under one driver; --adapter reaches only ` +
          `${a.sameAs} (identical GPUs: docs/adapters.md)`,
      );
    }
  }
  const empty = l.drivers.filter((d) => d.adapters === 0);
  for (const d of empty) lines.push(`  no adapter from ${d.driver}: ${d.note ?? "none found"}`);
  if (l.defaultIndex === null) {
    lines.push(
      l.defaultAdapter
        ? `  without --adapter: ${l.defaultAdapter.name}, from none of these drivers` +
          (l.webgpu === "deno" ? " (wgpu's OpenGL backend, when no Vulkan driver works)" : "")
        : "  without --adapter: no adapter",
    );
  }
  return lines.join("\n");
}

/** Runs `deno task gpus` with `args`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args,
      options: {
        json: { type: "boolean" },
        webgpu: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    console.error(`error: command line: ${(e as Error).message.split("\n")[0]}`);
    return 1;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.webgpu !== undefined && !isImplementation(values.webgpu)) {
    console.error(
      `error: --webgpu: Invalid option: expected one of ` +
        `${WEBGPU_IMPLEMENTATIONS.map((i) => `"${i}"`).join("|")}`,
    );
    return 1;
  }
  const which = values.webgpu ? [values.webgpu as WebGpuImplementation] : WEBGPU_IMPLEMENTATIONS;
  const listings = await Promise.all(which.map(listing));
  if (values.json) {
    console.log(JSON.stringify({ implementations: listings }, null, 2));
  } else {
    const tables = listings.some((l) => "adapters" in l && l.adapters.length > 0);
    console.log([...listings.map(formatListing), ...(tables ? [LEGEND] : [])].join("\n\n"));
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
