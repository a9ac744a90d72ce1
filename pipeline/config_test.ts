/**
 * The configuration's validation without a GPU: numbers are JSON numbers or numeric strings,
 * never coerced from empty strings, booleans or null; negative numbers after a flag; config
 * files whose JSON error would span lines.
 */

import { ConfigError, gpuChoiceOf, parseCommandLine, validateConfig } from "./config.ts";
import { assertThrows } from "../core/test_util.ts";
import { assert, assertEquals } from "../stages/data/test_fixtures.ts";

/** Awaits `run` and checks it fails with a one-line ConfigError containing every fragment. */
async function assertConfigError(run: () => Promise<unknown>, ...fragments: string[]) {
  let error: unknown;
  try {
    await run();
  } catch (e) {
    error = e;
  }
  assert(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
  const { message } = error;
  assert(!/[\r\n]/.test(message), `message ${JSON.stringify(message)} should be one line`);
  for (const f of fragments) {
    assert(message.includes(f), `message ${JSON.stringify(message)} lacks ${JSON.stringify(f)}`);
  }
  return message;
}

Deno.test("validateConfig: empty strings, booleans and null are not numbers", () => {
  assertThrows(() => validateConfig({ wd: "" }, "command line"), "--wd: expected a number");
  assertThrows(() => validateConfig({ wd: "  " }, "command line"), "--wd: expected a number");
  assertThrows(() => validateConfig({ wd: null }, "c.json"), "c.json: wd: expected a number");
  assertThrows(() => validateConfig({ steps: true }, "c.json"), "c.json: steps: expected a number");
  assertThrows(() => validateConfig({ lr: false }, "c.json"), "c.json: lr: expected a number");
  assertThrows(() => validateConfig({ "lr-o": "" }, "command line"), "--lr-o: expected a number");
  assertThrows(() => validateConfig({ probe: null }, "c.json"), "probe: expected a number");
  assertThrows(
    () => validateConfig({ hidden: "64,,32" }, "command line"),
    "--hidden (item 2): expected a number",
  );
  assertThrows(
    () => validateConfig({ milestones: [0.5, null] }, "c.json"),
    "milestones (item 2): expected a number",
  );
  assertThrows(
    () => validateConfig({ wd: "abc" }, "command line"),
    '--wd: expected a number, got "abc"',
  );
});

Deno.test("validateConfig: a JSON number or a numeric string (trimmed) is accepted", () => {
  const c = validateConfig({ wd: " 0.001 ", lr: 0.5, steps: "3", hidden: "64, 32" }, "test");
  assertEquals([c.wd, c.lr, c.steps, c.hidden], [0.001, 0.5, 3, [64, 32]]);
  assertEquals(validateConfig({ wd: 0 }, "test").wd, 0, "an explicit 0 stays valid");
  assertThrows(() => validateConfig({ lr: "Infinity" }, "command line"), "--lr: expected a finite");
  assertThrows(
    () => validateConfig({ steps: "1.5" }, "command line"),
    "--steps: expected an integer",
  );
});

Deno.test("parseCommandLine: empty or missing flag values are errors, not 0", async () => {
  await assertConfigError(() => parseCommandLine(["--wd", ""]), "--wd", "expected a number");
  await assertConfigError(
    () => parseCommandLine(["--wd", "--quiet"]),
    "--wd: expected a value, got the flag --quiet",
  );
  const dir = await Deno.makeTempDir();
  const file = `${dir}/c.json`;
  await Deno.writeTextFile(file, JSON.stringify({ steps: true, wd: null }));
  await assertConfigError(() => parseCommandLine(["--config", file]), file, "expected a number");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("parseCommandLine: a negative number after a flag is its value, not a flag", async () => {
  await assertConfigError(
    () => parseCommandLine(["--batch-size", "-5"]),
    "--batch-size: expected an integer >= 2",
  );
  await assertConfigError(() => parseCommandLine(["--wd", "-.5"]), "--wd: expected a number >= 0");
  await assertConfigError(
    () => parseCommandLine(["--lr", "-1e-3", "--quiet"]),
    "--lr: expected a number > 0",
  );
  const cmd = await parseCommandLine(["--seed", "3", "--batch-size", "64"]);
  assert(!cmd.help && cmd.config["batch-size"] === 64 && cmd.config.seed === 3, "plain values");
});

Deno.test("parseCommandLine: invalid JSON over several lines gives one whole line", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/broken.json`;
  await Deno.writeTextFile(file, '{\n  "lr": 0.1,\n  "wd": ,\n}\n');
  const message = await assertConfigError(
    () => parseCommandLine(["--config", file]),
    file,
    "not valid JSON",
  );
  // Quotes stay paired: the excerpt is not cut in the middle.
  assert((message.match(/"/g) ?? []).length % 2 === 0, `unpaired quote in ${message}`);
  assert(message.includes('\\n  "wd": ,\\n}'), `excerpt lost in ${message}`);
  await Deno.writeTextFile(file, '{\n  "lr": 0.1\n  "wd": 1\n}\n');
  await assertConfigError(() => parseCommandLine(["--config", file]), file, "line 3 column 3");
  await Deno.remove(dir, { recursive: true });
});

/** Runs `fn` with the environment variables `vars` set (undefined: unset), then restores them. */
function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  const set = (k: string, v: string | undefined) =>
    v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  for (const [k, v] of Object.entries(vars)) set(k, v);
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) set(k, v);
  }
}

Deno.test("--webgpu and --adapter: validated, one line each; unset unless given", async () => {
  const c = (await parseCommandLine(["--webgpu", "dawn", "--adapter", " SwiftShader "])) as {
    config: { webgpu?: string; adapter?: string };
  };
  assertEquals([c.config.webgpu, c.config.adapter], ["dawn", "SwiftShader"]);
  const plain = validateConfig({}, "test");
  assertEquals([plain.webgpu, plain.adapter], [undefined, undefined], "defaults stay unset");
  await assertConfigError(
    () => parseCommandLine(["--webgpu", "wgpu"]),
    "--webgpu:",
    "expected one of deno, dawn, got",
  );
  await assertConfigError(() => parseCommandLine(["--adapter", " "]), "--adapter: expected an");
  await assertConfigError(() => parseCommandLine(["--adapter"]), "--adapter");
  // A config file may give the index as a number.
  assertEquals(validateConfig({ adapter: 1 }, "c.json").adapter, "1");
  assertThrows(
    () => validateConfig({ adapter: -1 }, "c.json"),
    "c.json: adapter: expected an adapter's index or name",
  );
});

Deno.test("gpuChoiceOf: flags over WD_WEBGPU / WD_ADAPTER over deno and the default adapter", () => {
  withEnv({ WD_WEBGPU: undefined, WD_ADAPTER: undefined }, () => {
    assertEquals(gpuChoiceOf({}), { webgpu: "deno", adapter: undefined });
    assertEquals(gpuChoiceOf({ webgpu: "dawn", adapter: "0" }), { webgpu: "dawn", adapter: "0" });
  });
  withEnv({ WD_WEBGPU: "dawn", WD_ADAPTER: "swiftshader" }, () => {
    assertEquals(gpuChoiceOf({}), { webgpu: "dawn", adapter: "swiftshader" });
    assertEquals(gpuChoiceOf({ webgpu: "deno", adapter: "1" }), { webgpu: "deno", adapter: "1" });
  });
  withEnv({ WD_WEBGPU: "wgpu" }, () => {
    let error: unknown;
    try {
      gpuChoiceOf({});
    } catch (e) {
      error = e;
    }
    assert(error instanceof ConfigError, "a bad WD_WEBGPU is a ConfigError (exit 1)");
    assert(
      error.message === "WD_WEBGPU=wgpu: not a WebGPU implementation (allowed: deno, dawn)",
      `message: ${error.message}`,
    );
    assertEquals(gpuChoiceOf({ webgpu: "deno" }).webgpu, "deno", "the flag wins");
  });
});
