/**
 * `deno task gpu-check`: the one script to run on a machine with a GPU (or here, on the CPU
 * adapters), on each WebGPU implementation: the adapter listing (`deno task gpus`), the kernel
 * tilings tuned for each built-in model (`deno task tune`, into the results folder's own
 * `tilings-<implementation>.json`, which the bench then uses and completes), the GPU kernel,
 * trainer and model-file tests, the precision self-tests (df64; f64 where the adapter has
 * `shader-f64`), a short lockstep run of every model on both implementations compared step by
 * step (`deno task across`), and the bench. Every step runs as a child process with a time
 * limit; its output goes to one folder named after the adapters (`--out`, default
 * docs/results/gpu-check/<adapters>/), with `summary.json` and `summary.md` listing what passed
 * and how long each step took. Exits 1 when a step failed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { Listing } from "./gpus.ts";
import { GPU_PERMISSIONS, WEBGPU_ENV, WEBGPU_IMPLEMENTATIONS } from "../shaders/webgpu.ts";

const HELP = `Usage: deno task gpu-check [--out DIR] [--skip LIST] [--steps N]
Runs, on each WebGPU implementation (deno, dawn): deno task gpus, deno task tune for each
built-in model, the kernel, trainer and model-file tests, the df64 (and f64) self-tests, a lockstep run of every model on both compared step by
step (deno task across), and the bench; writes logs, summary.json and summary.md to DIR
(default docs/results/gpu-check/<adapters>).

  --out DIR     where the results go
  --skip LIST   steps to leave out: tune, tests, precision, across, bench
  --steps N     steps of each lockstep run (default 30)
  --help        this text`;

/**
 * The GPU tests: every kernel, the precision self-tests, the trainers against float64, and the
 * shipped model files trained through the command line (LayerNorm, GroupNorm, the buffer plan).
 */
const GPU_TESTS = [
  "shaders/",
  "stages/trainer_test.ts",
  "stages/trainer_df64_test.ts",
  "tests/models_test.ts",
];

/** One step's outcome. */
interface StepResult {
  step: string;
  webgpu?: string;
  ok: boolean;
  seconds: number;
  /** The step's last line of output, or its closing test line. */
  note: string;
  log: string;
}

const ROOT = new URL("..", import.meta.url).pathname;

/** Seconds `deno task tune` may spend per model (a GPU converges well within it). */
const TUNE_BUDGET = 30;

/** Runs `deno args` with `env` and a time limit; keeps stdout and stderr in `log`. */
async function run(
  args: string[],
  env: Record<string, string>,
  log: string,
  limitSeconds: number,
): Promise<{ ok: boolean; seconds: number; stdout: string; stderr: string }> {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1", ...env },
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), limitSeconds * 1000);
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout), stderr = dec.decode(out.stderr);
  await Deno.writeTextFile(log, `$ deno ${args.join(" ")}\n${stdout}\n--- stderr ---\n${stderr}`);
  return { ok: out.success, seconds: (performance.now() - started) / 1000, stdout, stderr };
}

/** The last non-empty line of `text` matching `pattern` (or the last line). */
function lastLine(text: string, pattern = /./): string {
  return text.trim().split("\n").filter((l) => pattern.test(l)).at(-1)?.trim() ?? "";
}

/** A folder name from adapter names: lower case, runs of other characters as one "-". */
export function slug(names: string[]): string {
  const unique = [...new Set(names)];
  return unique.map((n) => n.toLowerCase().replace(/[^a-z0-9.]+/g, "-").replace(/^-|-$/g, ""))
    .join("+") || "unknown-adapter";
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string" },
      skip: { type: "string", default: "" },
      steps: { type: "string", default: "30" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const skip = new Set(values.skip.split(",").filter((s) => s !== ""));
  const scratch = await Deno.makeTempDir({ prefix: "gpu-check-" });
  const results: StepResult[] = [];
  const record = (r: StepResult) => {
    results.push(r);
    console.error(
      `${r.ok ? "ok    " : "FAILED"} ${r.step}${r.webgpu ? ` (${r.webgpu})` : ""} ` +
        `${r.seconds.toFixed(1)} s: ${r.note}`,
    );
  };

  // 1. What each implementation sees; the default adapters name the results folder.
  const gpus = await run(
    ["run", ...GPU_PERMISSIONS, "bench/gpus.ts", "--json"],
    {},
    `${scratch}/gpus.log`,
    120,
  );
  await Deno.writeTextFile(`${scratch}/gpus.json`, gpus.stdout);
  const listings: Listing[] = gpus.ok ? JSON.parse(gpus.stdout).implementations : [];
  const defaults = new Map<string, { name: string; features: string[] }>();
  for (const l of listings) {
    const d = "adapters" in l ? l.adapters.find((a) => a.index === l.defaultIndex) : undefined;
    if (d) defaults.set(l.webgpu, d);
  }
  record({
    step: "gpus",
    ok: gpus.ok && defaults.size > 0,
    seconds: gpus.seconds,
    note: [...defaults].map(([w, a]) => `${w}: ${a.name}`).join("; ") || lastLine(gpus.stderr),
    log: "gpus.log",
  });
  const implementations = WEBGPU_IMPLEMENTATIONS.filter((w) => defaults.has(w));

  for (const webgpu of implementations) {
    const env = { [WEBGPU_ENV]: webgpu };
    const tilings = `tilings-${webgpu}.json`;
    const tuneFlags = ["--tune-cache", `${scratch}/${tilings}`, "--budget", String(TUNE_BUDGET)];
    // 2. Tuning first: the default training of each built-in model, into this check's cache.
    if (!skip.has("tune")) {
      for (const model of ["mlp", "cnn", "preresnet"]) {
        const log = `tune-${model}-${webgpu}.log`;
        const r = await run(
          ["run", ...GPU_PERMISSIONS, "main.ts", "tune", "--model", model, ...tuneFlags],
          env,
          `${scratch}/${log}`,
          900,
        );
        const note = lastLine(r.stderr, /^tune: done|error:/);
        record({ step: `tune ${model}`, webgpu, ok: r.ok, seconds: r.seconds, note, log });
      }
    }
    // 3. The GPU tests, the same files on each implementation.
    if (!skip.has("tests")) {
      const log = `tests-${webgpu}.log`;
      const r = await run(
        ["test", ...GPU_PERMISSIONS, ...GPU_TESTS],
        env,
        `${scratch}/${log}`,
        1800,
      );
      const closing = lastLine(r.stdout + r.stderr, /passed \| \d+ failed/);
      record({ step: "tests", webgpu, ok: r.ok, seconds: r.seconds, note: closing, log });
    }
    // 4. The startup self-tests of df64, and of f64 where the adapter has shader-f64.
    if (!skip.has("precision")) {
      const precisions = defaults.get(webgpu)!.features.includes("shader-f64")
        ? ["df64", "f64"]
        : ["df64"];
      for (const precision of precisions) {
        const log = `precision-${precision}-${webgpu}.log`;
        const r = await run(
          [
            "run",
            ...GPU_PERMISSIONS,
            "main.ts",
            "--precision",
            precision,
            "--steps",
            "1",
            "--runs",
            "A,B",
            "--quiet",
          ],
          env,
          `${scratch}/${log}`,
          600,
        );
        const note = lastLine(r.stderr, /^precision:|self-test|error:/);
        record({ step: `self-test ${precision}`, webgpu, ok: r.ok, seconds: r.seconds, note, log });
      }
    }
    // 6. The bench, default and tuned tilings side by side (5. comes after both, below); it
    // tunes its own shapes the cache lacks (PreResNet-20 on 32×32×3) first.
    if (!skip.has("bench")) {
      const log = `bench-${webgpu}.log`;
      // An hour: minutes on a GPU, but SwiftShader (2 cores) needs more than half an hour.
      const r = await run(
        ["run", ...GPU_PERMISSIONS, "bench/bench.ts", "--tune", "on", ...tuneFlags],
        env,
        `${scratch}/${log}`,
        3600,
      );
      if (r.ok) await Deno.writeTextFile(`${scratch}/bench-${webgpu}.json`, r.stdout);
      const note = lastLine(r.stderr, /steps\/s|GFLOP/);
      record({ step: "bench", webgpu, ok: r.ok, seconds: r.seconds, note, log });
    }
  }
  // 5. Every model in lockstep on both implementations, compared step by step.
  if (!skip.has("across") && implementations.length === 2) {
    const log = "across.log";
    const r = await run(
      [
        "run",
        ...GPU_PERMISSIONS,
        "bench/across.ts",
        "--sides",
        implementations.join(","),
        "--steps",
        values.steps,
      ],
      {},
      `${scratch}/${log}`,
      3600,
    );
    if (r.stdout.trim()) await Deno.writeTextFile(`${scratch}/across.json`, r.stdout);
    const lines = r.stderr.trim().split("\n").filter((l) => / (ok|FAILED);/.test(l));
    record({ step: "across", ok: r.ok, seconds: r.seconds, note: lines.join(" | "), log });
  }

  const folder = values.out ??
    `${ROOT}docs/results/gpu-check/${slug([...defaults.values()].map((a) => a.name))}`;
  await Deno.mkdir(folder, { recursive: true });
  for await (const f of Deno.readDir(scratch)) {
    await Deno.copyFile(`${scratch}/${f.name}`, `${folder}/${f.name}`);
  }
  await Deno.remove(scratch, { recursive: true });
  const summary = {
    date: new Date().toISOString(),
    adapters: Object.fromEntries(defaults),
    results,
  };
  await Deno.writeTextFile(`${folder}/summary.json`, JSON.stringify(summary, null, 2) + "\n");
  const rows = results.map((r) =>
    `| ${r.step} | ${r.webgpu ?? "both"} | ${r.ok ? "ok" : "FAILED"} | ${r.seconds.toFixed(0)} | ` +
    `${r.note.replaceAll("|", "/")} |`
  );
  await Deno.writeTextFile(
    `${folder}/summary.md`,
    [
      `# gpu-check, ${summary.date}`,
      "",
      ...[...defaults].map(([w, a]) => `- ${w}: ${a.name}`),
      "",
      "| step | webgpu | result | s | note |",
      "| --- | --- | --- | --- | --- |",
      ...rows,
      "",
    ].join("\n"),
  );
  console.error(`results in ${folder}`);
  return results.every((r) => r.ok) ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
