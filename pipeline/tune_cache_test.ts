/** The tuned tilings cache: round trip, bad files as one line, stale sections, default paths. */

import {
  defaultTuneCachePath,
  loadTunedTilings,
  saveTunedTilings,
  TUNE_CACHE_FORMAT,
  type TunedEntry,
  type TuneIdentity,
} from "./tune_cache.ts";
import { assert, assertEquals } from "../stages/data/test_fixtures.ts";

const ID: TuneIdentity = {
  implementation: "deno",
  adapter: "llvmpipe (LLVM 15.0.6, 256 bits)",
  driver: "Mesa 23.2.1",
  version: "0.5.0",
};

function entry(over: Partial<TunedEntry> = {}): TunedEntry {
  return {
    tiling: { tn: 16, tm: 8, vecA: true },
    defaultMs: 2.1,
    tunedMs: 1.7,
    tried: 12,
    rejected: 1,
    tunedAt: "2026-12-05T09:00:00.000Z",
    ...over,
  };
}

/** A fresh temporary folder, removed after `body`. */
async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tune_cache_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Loads `path` for `identity`, returning the map and the lines logged. */
async function load(path: string, identity = ID) {
  const lines: string[] = [];
  const map = await loadTunedTilings(path, identity, (l) => lines.push(l));
  for (const l of lines) assert(!/[\r\n]/.test(l), `line "${l}" is not one line`);
  return { map, lines };
}

/** Writes `doc` (JSON unless a string) to `path`, loads it, and checks: empty, one line. */
async function oneLine(path: string, doc: unknown, fragment: string): Promise<string> {
  await Deno.writeTextFile(path, typeof doc === "string" ? doc : JSON.stringify(doc));
  const { map, lines } = await load(path);
  assert(map.size === 0, `${fragment}: got ${map.size} entries`);
  assert(lines.length === 1, `${fragment}: ${lines.length} lines: ${lines.join(" | ")}`);
  assert(lines[0].includes(path), `"${lines[0]}" does not name the file`);
  assert(lines[0].includes(fragment), `"${lines[0]}" lacks "${fragment}"`);
  assert(lines[0].endsWith("; default tilings used"), `"${lines[0]}"`);
  return lines[0];
}

/** A valid file holding `kernels` for `identity`. */
function fileWith(identity: TuneIdentity, kernels: Record<string, unknown>) {
  return { format: TUNE_CACHE_FORMAT, tunings: [{ ...identity, kernels }] };
}

Deno.test("tune cache: entries round trip through a stable, readable file", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/sub/folder/tilings.json`;
    const entries = new Map([
      ["matmul 64x128x256 f32", entry()],
      ["conv 3x3 c16 f32", entry({ tiling: {}, tunedMs: 2.1, tried: 3, rejected: 0 })],
    ]);
    await saveTunedTilings(path, ID, entries);
    const { map, lines } = await load(path);
    assertEquals(lines, [], "lines");
    assertEquals([...map.keys()], ["conv 3x3 c16 f32", "matmul 64x128x256 f32"], "keys");
    // Tiling fields come back sorted.
    const sorted = { ...entry(), tiling: { tm: 8, tn: 16, vecA: true } };
    assertEquals(map.get("matmul 64x128x256 f32"), sorted, "matmul");
    assertEquals(map.get("conv 3x3 c16 f32")?.tiling, {}, "default won");
    // Keys sorted, 2-space indented, a final newline; saving the same again changes nothing.
    const text = await Deno.readTextFile(path);
    assert(text.startsWith(`{\n  "format": "${TUNE_CACHE_FORMAT}",\n  "tunings": [\n`), text);
    assert(text.includes(`"tiling": {\n            "tm": 8,\n            "tn": 16,`), text);
    assert(text.endsWith("}\n"), "final newline");
    await saveTunedTilings(path, ID, new Map([...entries].reverse()));
    assertEquals(await Deno.readTextFile(path), text, "saved again");
    const left = [...Deno.readDirSync(`${dir}/sub/folder`)].map((e) => e.name);
    assertEquals(left, ["tilings.json"], "files left");
  });
});

Deno.test("tune cache: a missing file is silent", async () => {
  await withDir(async (dir) => {
    const { map, lines } = await load(`${dir}/none/tilings.json`);
    assert(map.size === 0 && lines.length === 0, `${map.size} entries, lines ${lines}`);
  });
});

Deno.test("tune cache: corrupt JSON, another format, an unreadable path: one line each", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/tilings.json`;
    await oneLine(path, '{"format": "wd-explr tilings 1", "tunings": [', "is not JSON");
    await oneLine(path, "", "is not JSON");
    await oneLine(
      path,
      { format: "wd-explr tilings 2", tunings: [] },
      `is not a tilings cache (format "wd-explr tilings 2", expected "${TUNE_CACHE_FORMAT}")`,
    );
    await oneLine(path, [1, 2], "is not a tilings cache (no format");
    // A folder where the file should be.
    const folder = `${dir}/folder.json`;
    await Deno.mkdir(folder);
    const lines: string[] = [];
    const map = await loadTunedTilings(folder, ID, (l) => lines.push(l));
    assert(map.size === 0 && lines.length === 1, `folder: ${lines}`);
    assert(lines[0].startsWith(`tilings cache ${folder} cannot be read: `), lines[0]);
  });
});

Deno.test("tune cache: a schema-invalid entry: one line naming the field", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/tilings.json`;
    const bad = (tiling: unknown, over: Record<string, unknown> = {}) =>
      fileWith(ID, { "matmul k": { ...entry(), tiling, ...over } });
    const line = await oneLine(path, bad({ tm: -1 }), 'kernels["matmul k"]');
    assert(line.includes("tiling.tm: expected a positive integer <= 4096 or a boolean"), line);
    await oneLine(path, bad({ tm: 8192 }), "tiling.tm");
    await oneLine(path, bad({ tm: 2.5 }), "tiling.tm");
    await oneLine(path, bad({ tm: "8" }), "tiling.tm");
    await oneLine(path, bad({}, { tunedMs: -0.5 }), "tunedMs: expected ms >= 0");
    await oneLine(path, bad({}, { defaultMs: null }), "defaultMs");
    await oneLine(path, bad({}, { tried: 1.5 }), "tried");
    await oneLine(path, { format: TUNE_CACHE_FORMAT }, "tunings");
    const twice = {
      format: TUNE_CACHE_FORMAT,
      tunings: [{ ...ID, kernels: {} }, { ...ID, kernels: {} }],
    };
    await oneLine(path, twice, "a second tuning");
  });
});

Deno.test("tune cache: another version is stale: one line, empty, dropped on save", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/tilings.json`;
    const old = { ...ID, version: "0.4.0" };
    await saveTunedTilings(path, old, new Map([["matmul k", entry()]]));
    const line = await oneLine(path, await Deno.readTextFile(path), "has no tilings for");
    assertEquals(
      line,
      `tilings cache ${path} has no tilings for llvmpipe (LLVM 15.0.6, 256 bits), driver ` +
        "Mesa 23.2.1 (deno), version 0.5.0 (it has: llvmpipe (LLVM 15.0.6, 256 bits), driver " +
        "Mesa 23.2.1 (deno), version 0.4.0); default tilings used",
      "line",
    );
    await saveTunedTilings(path, ID, new Map([["matmul k", entry({ tunedMs: 1.5 })]]));
    const saved = JSON.parse(await Deno.readTextFile(path));
    assertEquals(saved.tunings.map((t: TuneIdentity) => t.version), ["0.5.0"], "versions");
    assert((await load(path)).map.get("matmul k")?.tunedMs === 1.5, "new entry");
    // The other version now finds nothing, and says what is there.
    const back = await load(path, old);
    assert(back.map.size === 0 && back.lines[0].includes("(it has: llvmpipe"), back.lines[0]);
  });
});

Deno.test("tune cache: other adapters, drivers and implementations are kept on save", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/tilings.json`;
    const gpu = { ...ID, adapter: "NVIDIA H100", driver: "550.54" };
    const dawn = { ...ID, implementation: "dawn" };
    await saveTunedTilings(path, gpu, new Map([["matmul k", entry({ tunedMs: 0.1 })]]));
    await saveTunedTilings(path, dawn, new Map([["matmul k", entry({ tunedMs: 0.2 })]]));
    await saveTunedTilings(path, ID, new Map([["matmul k", entry({ tunedMs: 0.3 })]]));
    // Saving the same identity again replaces its section only.
    await saveTunedTilings(path, ID, new Map([["conv k", entry({ tunedMs: 0.4 })]]));
    for (const [id, key, ms] of [[gpu, "matmul k", 0.1], [dawn, "matmul k", 0.2]] as const) {
      const { map, lines } = await load(path, id);
      assert(lines.length === 0 && map.get(key)?.tunedMs === ms, `${id.adapter}: ${lines}`);
    }
    const mine = await load(path);
    assertEquals([...mine.map.keys()], ["conv k"], "replaced section");
    const saved = JSON.parse(await Deno.readTextFile(path));
    assert(saved.tunings.length === 3, `${saved.tunings.length} sections`);
  });
});

Deno.test("tune cache: a corrupt file is replaced on save; invalid entries are not saved", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/tilings.json`;
    await Deno.writeTextFile(path, "not json");
    await saveTunedTilings(path, ID, new Map([["k", entry()]]));
    const { map, lines } = await load(path);
    assert(lines.length === 0 && map.size === 1, `after replacing: ${lines}`);
    let message = "";
    try {
      await saveTunedTilings(path, ID, new Map([["k", entry({ tiling: { tm: 0 } })]]));
    } catch (e) {
      message = (e as Error).message;
    }
    assertEquals(
      message,
      'tilings cache: not saving kernel "k": tiling.tm: ' +
        "expected a positive integer <= 4096 or a boolean",
      "error",
    );
    assert((await load(path)).map.get("k")?.tiling.tm === 8, "the old file is untouched");
  });
});

Deno.test("defaultTuneCachePath: XDG, ~/.cache, macOS and Windows folders", () => {
  const linux = (env: Record<string, string | undefined>) => defaultTuneCachePath(env, "linux");
  assertEquals(
    linux({ HOME: "/home/u", XDG_CACHE_HOME: "/xdg/cache/" }),
    "/xdg/cache/wd-explr/tilings.json",
    "XDG_CACHE_HOME",
  );
  assertEquals(linux({ HOME: "/home/u" }), "/home/u/.cache/wd-explr/tilings.json", "no XDG");
  assertEquals(
    linux({ HOME: "/home/u", XDG_CACHE_HOME: "" }),
    "/home/u/.cache/wd-explr/tilings.json",
    "empty XDG",
  );
  assertEquals(
    linux({ HOME: "/home/u", XDG_CACHE_HOME: "rel" }),
    "/home/u/.cache/wd-explr/tilings.json",
    "relative XDG",
  );
  assertEquals(
    defaultTuneCachePath({ HOME: "/Users/u", XDG_CACHE_HOME: "/xdg" }, "darwin"),
    "/Users/u/Library/Caches/wd-explr/tilings.json",
    "darwin",
  );
  assertEquals(
    defaultTuneCachePath({ LOCALAPPDATA: "C:\\Users\\u\\AppData\\Local" }, "windows"),
    "C:\\Users\\u\\AppData\\Local\\wd-explr\\tilings.json",
    "windows",
  );
  assertEquals(
    defaultTuneCachePath({ USERPROFILE: "C:\\Users\\u" }, "windows"),
    "C:\\Users\\u\\AppData\\Local\\wd-explr\\tilings.json",
    "windows without LOCALAPPDATA",
  );
  let message = "";
  try {
    linux({});
  } catch (e) {
    message = (e as Error).message;
  }
  assert(message.includes("nor HOME is set"), `no HOME: "${message}"`);
});
