/**
 * Tuning as a user meets it, run as subprocesses: `deno task tune` writes the tilings cache and
 * prints what it measured, `train` then runs with the cache's tilings and its summary says so,
 * and a cache that is corrupt, or written for another version, is ignored with one line on
 * stderr while the run goes on, as is each hand-edited tiling the kernels cannot take. (The
 * tuner's own guarantees are tested in stages/tuner_test.ts.)
 *
 * @module
 */

import { assertOneLineError, type MainResult, runMain } from "./fixtures/main_cli.ts";
import { GPU_PERMISSIONS } from "../shaders/webgpu.ts";
import { TUNE_CACHE_FORMAT } from "../pipeline/tune_cache.ts";
import { VERSION } from "../pipeline/version.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const cli = (args: string[]): Promise<MainResult> =>
  runMain(args, { permissions: GPU_PERMISSIONS });

/** A small MLP run on the shipped data, quick on lavapipe. */
const SMALL = ["--hidden", "24", "--batch-size", "32", "--probe", "32", "--runs", "A,B"];

function check(ok: boolean, what: string, r?: MainResult): void {
  if (!ok) throw new Error(`${what}${r ? `; exit ${r.code}; stderr: ${r.stderr}` : ""}`);
}

/** The stderr lines that mention the tilings cache. */
const cacheLines = (r: MainResult) =>
  r.stderr.split("\n").filter((l) => l.startsWith("tilings cache"));

Deno.test({
  ...opts,
  name:
    "deno task tune writes the cache and reports every kernel; train uses it and says so, and drops a tiling edited into one it cannot build",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tune-test-" });
    const cache = `${dir}/sub/tilings.json`; // a folder that does not exist yet
    const tune = await cli(["tune", ...SMALL, "--tune-cache", cache, "--budget", "4"]);
    check(tune.code === 0, "tune failed", tune);
    const report = JSON.parse(tune.stdout);
    check(report.kernels.length >= 5, `kernels: ${report.kernels.length}`);
    const file = JSON.parse(await Deno.readTextFile(cache));
    check(file.format === TUNE_CACHE_FORMAT && file.tunings.length === 1, "cache format");
    const section = file.tunings[0];
    check(section.version === VERSION, `cache version ${section.version}`);
    const keys = report.kernels.map((k: { key: string }) => k.key).sort();
    check(
      JSON.stringify(Object.keys(section.kernels).sort()) === JSON.stringify(keys),
      "the cache holds exactly the reported kernels",
    );
    for (const k of report.kernels) {
      check(k.tunedMs <= k.defaultMs && k.tried >= 1, `${k.key}: ${JSON.stringify(k)}`);
    }
    const train = await cli([
      ...SMALL,
      "--steps",
      "3",
      "--tune-cache",
      cache,
      "--summary",
      `${dir}/summary.json`,
      "--quiet",
    ]);
    check(train.code === 0, "train failed", train);
    check(cacheLines(train).length === 0, "a good cache must be silent", train);
    const summary = JSON.parse(await Deno.readTextFile(`${dir}/summary.json`));
    check(summary.tilings.tune === "cached" && summary.tilings.from === cache, "summary tilings");
    const tuned = report.kernels.filter((k: { tiling: object }) => Object.keys(k.tiling).length);
    check(
      Object.keys(summary.tilings.kernels).length === tuned.length,
      `summary lists ${
        Object.keys(summary.tilings.kernels).length
      } tuned, tune chose ${tuned.length}`,
    );
    // Hand-edited: a field no matmul tiling has, and a workgroup past every device's limits.
    const [odd, wide] = keys.filter((k: string) => k.startsWith("matmul"));
    section.kernels[odd].tiling = { tm: 4, bogus: 3 };
    section.kernels[wide].tiling = { wgx: 64, wgy: 64 };
    await Deno.writeTextFile(cache, JSON.stringify(file));
    const edited = await cli([
      ...SMALL,
      "--steps",
      "2",
      "--tune-cache",
      cache,
      "--summary",
      `${dir}/edited.json`,
      "--quiet",
    ]);
    check(edited.code === 0, "train with an edited cache failed", edited);
    const lines = cacheLines(edited);
    check(lines.length === 2, `${lines.length} cache lines for two bad tilings`, edited);
    check(
      lines[0].includes(odd) !== lines[1].includes(odd) &&
        lines.some((l) => l.includes(odd) && l.includes("bogus is no field of a matmul tiling")) &&
        lines.some((l) => l.includes(wide) && l.includes("does not compile")) &&
        lines.every((l) => l.endsWith("the default runs")),
      `the lines name each kernel and why: ${lines.join(" | ")}`,
    );
    const used = JSON.parse(await Deno.readTextFile(`${dir}/edited.json`)).tilings.kernels;
    check(
      !(odd in used) && !(wide in used),
      `the summary lists a dropped tiling: ${Object.keys(used)}`,
    );
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  ...opts,
  name: "a corrupt or stale tilings cache: one line on stderr, default tilings, the run goes on",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tune-test-" });
    const stale = {
      format: TUNE_CACHE_FORMAT,
      tunings: [{
        implementation: "deno",
        adapter: "some adapter",
        driver: "",
        version: "0.0.1",
        kernels: {},
      }],
    };
    const files = { corrupt: "{ not json", stale: JSON.stringify(stale) };
    for (const [what, text] of Object.entries(files)) {
      const cache = `${dir}/${what}.json`;
      await Deno.writeTextFile(cache, text);
      const r = await cli([...SMALL, "--steps", "2", "--tune-cache", cache, "--quiet"]);
      check(r.code === 0, `${what}: train failed`, r);
      const lines = cacheLines(r);
      check(lines.length === 1, `${what}: ${lines.length} cache lines`, r);
      check(lines[0].includes(cache) && lines[0].endsWith("default tilings used"), lines[0]);
      check(/summary: .*tilings: defaults/.test(r.stderr), `${what}: summary`, r);
    }
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  ...opts,
  name: "bad tuning flags: one line naming the flag, exit 1",
  async fn() {
    assertOneLineError(await cli(["--tune", "always"]), 1, "--tune", "off, cached, on");
    assertOneLineError(await cli(["tune", "--budget", "0"]), 1, "--budget", "> 0");
    assertOneLineError(await cli(["--tune-cache", ""]), 1, "--tune-cache");
  },
});

/** The data rows of a CSV output (the header dropped). */
const rows = (csv: string) => csv.split("\n").slice(1).filter((l) => l !== "");

Deno.test({
  ...opts,
  name:
    "resume: the checkpoint's tilings, not the cache's, so 3 + 3 resumed steps = 6 steps byte for byte",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tune-test-" });
    const cnn = ["--model", "cnn", "--batch-size", "8", "--probe", "8", "--runs", "A,B"];
    const args = [...cnn, "--every", "1", "--quiet"];
    const cache = `${dir}/tilings.json`;
    const tune = await cli(["tune", ...cnn, "--tune-cache", cache, "--budget", "1"]);
    check(tune.code === 0, "tune failed", tune);
    // Every convolution's dW split over 8 invocations instead of its default 16 or 32: other
    // partial sums, so float32 results that differ from the default tilings' in the last bits.
    const file = JSON.parse(await Deno.readTextFile(cache));
    const kernels = file.tunings[0].kernels;
    for (const key of Object.keys(kernels)) {
      kernels[key].tiling = key.startsWith("conv backwardWeight") ? { wg: 8 } : {};
    }
    await Deno.writeTextFile(cache, JSON.stringify(file));
    const tuned = await cli([...args, "--steps", "6", "--tune-cache", cache]);
    const plain = await cli([...args, "--steps", "6", "--tune", "off"]);
    check(tuned.code === 0 && plain.code === 0, "the uninterrupted runs failed", tuned);
    check(
      tuned.stdout !== plain.stdout,
      "the hand-set tilings changed no bit: the test shows nothing",
    );
    const ck = `${dir}/ck`;
    const first = await cli([
      ...args,
      "--steps",
      "3",
      "--tune-cache",
      cache,
      "--checkpoint-dir",
      ck,
    ]);
    check(first.code === 0, "the first half failed", first);
    // The cache is gone: only the checkpoint knows the tilings.
    await Deno.remove(cache);
    const resumed = await cli([...args, "--steps", "6", "--resume", ck, "--tune-cache", cache]);
    check(resumed.code === 0, "the resumed run failed", resumed);
    check(
      resumed.stderr.includes("the checkpoint's 3 tuned kernels"),
      "resume names the tilings",
      resumed,
    );
    const whole = rows(tuned.stdout), tail = rows(resumed.stdout);
    check(
      /tilings: 3 tuned \(from [^)]*step-0+2\.safetensors\)/.test(resumed.stderr),
      "summary",
      resumed,
    );
    check(tail.length === 3, `resumed ${tail.length} rows`);
    check(tail.join("\n") === whole.slice(3).join("\n"), "the resumed rows differ from the run's");
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  ...opts,
  name:
    "a tilings cache that cannot be written: --tune on trains and says so, deno task tune fails with one line",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tune-test-" });
    await Deno.writeTextFile(`${dir}/file`, "");
    const cache = `${dir}/file/tilings.json`; // under a file: no folder can be made there
    const flags = [...SMALL, "--tune-cache", cache, "--budget", "2"];
    const train = await cli([...flags, "--tune", "on", "--steps", "2", "--quiet"]);
    check(train.code === 0, "train failed", train);
    // One line that it cannot be read (a file where a folder should be), one that it cannot be
    // written; the run goes on with what it tuned.
    const lines = cacheLines(train);
    check(
      lines.length === 2 && lines[0].includes("cannot be read") &&
        lines[1].includes("cannot be written") && lines[1].endsWith("tuned for this run only"),
      "a line each",
      train,
    );
    assertOneLineError(await cli(["tune", ...flags]), 1, cache, "cannot be written");
    await Deno.remove(dir, { recursive: true });
  },
});
