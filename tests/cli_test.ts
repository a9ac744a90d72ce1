/**
 * The command line as a user meets it, run as a subprocess: help, bad flags and config files,
 * bad data, a missing GPU adapter, divergence, a reader that closes stdout early, and the
 * default job learning on the shipped data.
 */

import { acquireGpu } from "../shaders/gpu.ts";
import { assertOneLineError, type MainResult, runMain } from "./fixtures/main_cli.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const opts = { sanitizeResources: false, sanitizeOps: false };

/** Runs `main.ts ...args` with the permissions `deno task train` grants but FFI and run. */
const cli = (args: string[], env: Record<string, string> = {}): Promise<MainResult> =>
  runMain(args, { permissions: ["--allow-read", "--allow-write", "--allow-env"], env });

Deno.test({
  ...opts,
  name: "--help lists every flag with its default and exits 0",
  async fn() {
    const r = await cli(["--help"]);
    if (r.code !== 0) throw new Error(`exit ${r.code}`);
    for (
      const f of [
        "--runs",
        "--explr",
        "--bn-eps-mode",
        "--rescale-above",
        "--format",
        "(default: A,B,A1)",
      ]
    ) {
      if (!r.stdout.includes(f)) throw new Error(`help lacks ${f}`);
    }
  },
});

Deno.test({
  ...opts,
  name: "bad flags and values: one line naming the flag (and allowed values), exit 1",
  async fn() {
    assertOneLineError(await cli(["--bogus"]), 1, "--bogus");
    assertOneLineError(
      await cli(["--format", "xml"]),
      1,
      "--format",
      'expected one of csv, jsonl, got "xml"',
    );
    assertOneLineError(await cli(["--runs", "B,A"]), 1, "--runs", "must start with A");
    assertOneLineError(await cli(["--batch-size", "0"]), 1, "--batch-size");
    assertOneLineError(await cli(["--explr", "closed", "--schedule", "cosine"]), 1, "--explr");
    assertOneLineError(await cli(["--batch-size", "1"]), 1, "--batch-size", ">= 2");
    assertOneLineError(await cli(["--runs", "A,Z"]), 1, "--runs (item 2)");
    // Caught at startup, before any row is written, not at the step where they would fail:
    assertOneLineError(
      await cli(["--rescale-above", "10"]),
      1,
      "--rescale-above",
      "initial S weight norm",
    );
    assertOneLineError(
      await cli(["--runs", "A,B", "--wd", "0.05"]),
      1,
      "--lr/--wd/--momentum",
      "step 47",
    );
  },
});

Deno.test({
  ...opts,
  name: "config files: flags override them; a bad key or value names the file and the key",
  async fn() {
    const dir = await Deno.makeTempDir();
    const bad = `${dir}/bad.json`, unknown = `${dir}/unknown.json`, broken = `${dir}/broken.json`;
    await Deno.writeTextFile(bad, JSON.stringify({ "bn-eps-mode": "sometimes" }));
    await Deno.writeTextFile(unknown, JSON.stringify({ "learning-rate": 0.1 }));
    await Deno.writeTextFile(broken, "{ not json");
    assertOneLineError(
      await cli(["--config", bad]),
      1,
      bad,
      "bn-eps-mode",
      "expected one of scaled, fixed, got",
    );
    assertOneLineError(
      await cli(["--config", unknown]),
      1,
      unknown,
      "learning-rate",
      "unknown setting",
    );
    assertOneLineError(await cli(["--config", broken]), 1, broken, "not valid JSON");
    const good = `${dir}/good.json`;
    await Deno.writeTextFile(
      good,
      JSON.stringify({ runs: ["A", "B"], steps: 2, format: "csv", "eval-every": 0 }),
    );
    const r = await cli(["--config", good, "--format", "jsonl", "--quiet"]);
    if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
    const lines = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    if (lines.length !== 2 || !("B.dist_maxprob" in lines[0])) {
      throw new Error(`unexpected output ${r.stdout}`);
    }
  },
});

Deno.test({
  ...opts,
  name: "bad data: a truncated file stops before training with one line naming the file, exit 1",
  async fn() {
    const dir = await Deno.makeTempDir();
    const src = new URL("../data/fashion-mnist/", import.meta.url).pathname;
    const images = await Deno.readFile(`${src}t10k-images-idx3-ubyte.gz`);
    await Deno.writeFile(
      `${dir}/t10k-images-idx3-ubyte.gz`,
      images.subarray(0, images.length >> 1),
    );
    await Deno.copyFile(`${src}t10k-labels-idx1-ubyte.gz`, `${dir}/t10k-labels-idx1-ubyte.gz`);
    assertOneLineError(await cli(["--data", dir]), 1, "t10k-images-idx3-ubyte.gz");
    assertOneLineError(await cli(["--data", `${dir}/missing.csv`]), 1, "missing.csv");
    assertOneLineError(await cli(["--probe", "5000"]), 1, "probe");
  },
});

Deno.test({
  ...opts,
  name: "no hidden widths (--hidden '' or a config file's []): one line, no panic, exit 1",
  async fn() {
    const message = "hidden: expected at least one hidden width";
    assertOneLineError(await cli(["--hidden", ""]), 1, `--${message}`);
    const dir = await Deno.makeTempDir();
    const file = `${dir}/hidden.json`;
    await Deno.writeTextFile(file, JSON.stringify({ hidden: [] }));
    assertOneLineError(await cli(["--config", file]), 1, `${file}: ${message}`);
  },
});

Deno.test({
  ...opts,
  name: "numbers are not coerced: empty, missing, boolean and null values are errors, not 0",
  async fn() {
    // `--wd $WD` with WD unset: the next flag is not the value.
    assertOneLineError(await cli(["--wd", "--quiet"]), 1, "--wd: expected a value");
    assertOneLineError(await cli(["--wd", ""]), 1, '--wd: expected a number, got ""');
    const dir = await Deno.makeTempDir();
    const file = `${dir}/numbers.json`;
    await Deno.writeTextFile(file, JSON.stringify({ steps: true, wd: null }));
    assertOneLineError(await cli(["--config", file]), 1, file, "expected a number, got");
    // A negative value after a space is a value (parseArgs alone calls it ambiguous).
    assertOneLineError(
      await cli(["--batch-size", "-5"]),
      1,
      "--batch-size: expected an integer >= 2",
    );
  },
});

Deno.test({
  ...opts,
  name: "config file errors stay whole on one line: multi-line JSON excerpts, odd file names",
  async fn() {
    const dir = await Deno.makeTempDir();
    const broken = `${dir}/broken.json`;
    await Deno.writeTextFile(broken, '{\n  "lr": 0.1,\n  "wd": ,\n}\n');
    assertOneLineError(await cli(["--config", broken]), 1, broken, "is not valid JSON");
    // main renders any message on one line without cutting it at a line break.
    const odd = `${dir}/two\nlines.json`;
    const r = await cli(["--config", odd]);
    assertOneLineError(r, 1, "two lines.json: cannot read config file");
    // The name is in the message twice: ours, then Deno's (`readfile '...'`), neither cut.
    if (r.stderr.split("lines.json").length !== 3) throw new Error(`cut: ${r.stderr}`);
  },
});

Deno.test({
  ...opts,
  name: "one class in the data: one line naming the file, exit 1",
  async fn() {
    const dir = await Deno.makeTempDir();
    const file = `${dir}/one.csv`;
    await Deno.writeTextFile(file, "label,a,b\n" + "2,1,0\n2,0,1\n".repeat(4));
    const args = ["--data", file, "--heldout", "2", "--batch-size", "2", "--probe", "2"];
    assertOneLineError(await cli([...args, "--quiet"]), 1, `${file}: labels: every label is 2`);
  },
});

Deno.test({
  ...opts,
  name:
    "a stray large label in a CSV file: a warning naming it and its line, an error past 1024 classes",
  async fn() {
    const dir = await Deno.makeTempDir();
    const file = `${dir}/stray.csv`;
    const run = async (stray: number) => {
      const rows = ["0,1,0", "1,0,1", "2,1,1", "0,0,0", "1,1,0", `${stray},0,1`, "2,1,1", "0,1,0"];
      await Deno.writeTextFile(file, ["label,a,b", ...rows].join("\n") + "\n");
      return await cli([
        ...["--data", file, "--heldout", "2", "--batch-size", "2", "--probe", "2"],
        ...["--hidden", "4", "--runs", "A", "--steps", "1", "--eval-every", "0", "--quiet"],
      ]);
    };
    const r = await run(90);
    if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
    if (!r.stderr.includes(`warning: ${file}: line 7: label 90 is far above the others`)) {
      throw new Error(`no warning: ${r.stderr}`);
    }
    assertOneLineError(
      await run(60000),
      1,
      `${file}: line 7: label 60000 is far above the others: 60001 classes for 4 distinct labels`,
    );
  },
});

Deno.test({
  ...opts,
  name:
    "--summary into a missing folder or a forbidden place: one line at startup, before the data",
  async fn() {
    // A bad --data too: the summary path is checked first, before any data or GPU work.
    const bad = ["--data", "/nonexistent/data.csv"];
    const missing = await cli(["--summary", "/nonexistent/dir/s.json", ...bad]);
    assertOneLineError(
      missing,
      1,
      "--summary: cannot write /nonexistent/dir/s.json: folder does not exist",
    );
    if (missing.stderr.includes("adapter:")) throw new Error("checked after the GPU was taken");
    const proc = await cli(["--summary", "/proc/x", ...bad]);
    assertOneLineError(proc, 1, "--summary: cannot write /proc/x:");
    if (proc.stderr.includes("--allow")) throw new Error(`suggests a Deno flag: ${proc.stderr}`);
  },
});

Deno.test({
  ...opts,
  name: "no WebGPU adapter: one line saying how to get lavapipe, exit 2",
  async fn() {
    const none = "/nonexistent/icd.json";
    // Vulkan only (no GL fallback) and no Vulkan driver: the machine of a user without Mesa.
    const r = await cli(["--steps", "1"], {
      DENO_WEBGPU_BACKEND: "vulkan",
      VK_DRIVER_FILES: none,
      VK_ICD_FILENAMES: none,
    });
    assertOneLineError(r, 2, "adapter", "mesa-vulkan-drivers");
  },
});

Deno.test({
  ...opts,
  name:
    "a step too large for the adapter: refused before allocating, one line with the need, the limit and the flags",
  async fn() {
    // Hidden width such that the first layer's activation (batch 8000, 3 runs, 4 B) passes
    // the largest binding the adapter allows.
    const limit = (await acquireGpu()).device.limits.maxStorageBufferBindingSize;
    const hidden = Math.ceil(limit / (8000 * 3 * 4)) + 1;
    const args = ["--hidden", `${hidden}`, "--batch-size", "8000", "--probe", "2", "--steps", "1"];
    const r = await cli(args);
    assertOneLineError(r, 1, "needs", "MiB, more than the adapter binds", "--batch-size", "--runs");
    if (r.stderr.includes("summary:")) throw new Error(`a summary was written: ${r.stderr}`);
  },
});

Deno.test({
  ...opts,
  name: "divergence: NaN in training stops with one line and exit 1; the rows written are whole",
  async fn() {
    const r = await cli(["--runs", "A,A1", "--lr", "1e30", "--lr-o", "1e30", "--quiet"]);
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
    if (r.code !== 1 || errors.length !== 1 || !errors[0].includes("diverged")) {
      throw new Error(`exit ${r.code}; stderr ${r.stderr}`);
    }
    if (!r.stdout.endsWith("\n")) throw new Error("stdout ends in a partial line");
    const widths = new Set(r.stdout.trimEnd().split("\n").map((l) => l.split(",").length));
    if (widths.size !== 1) throw new Error(`rows of different widths: ${[...widths]}`);
  },
});

Deno.test({
  ...opts,
  name:
    "closing stdout early (| head -n 3): exit 0, the steps in flight finish, the stop checkpoint and the summary describe one state",
  async fn() {
    const dir = await Deno.makeTempDir();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        MAIN,
        ...["--runs", "A,B", "--quiet", "--in-flight", "3"],
        ...["--checkpoint-dir", `${dir}/ck`, "--summary", `${dir}/s.json`],
      ],
      env: { XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (text.split("\n").length <= 3) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    await reader.cancel();
    const t0 = performance.now();
    const status = await child.status;
    const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
    if (status.code !== 0) throw new Error(`exit ${status.code}: ${stderr}`);
    if (stderr.includes("error")) throw new Error(`stderr reports an error: ${stderr}`);
    if (performance.now() - t0 > 30_000) {
      throw new Error("the run went on long after stdout closed");
    }
    const s = JSON.parse(await Deno.readTextFile(`${dir}/s.json`));
    const files = [...Deno.readDirSync(`${dir}/ck`)].map((e) => e.name).sort();
    const last = `step-${String(s.steps - 1).padStart(9, "0")}.safetensors`;
    if (!s.output_closed || files.join() !== `run.json,${last}`) {
      throw new Error(`after ${s.steps} steps, the folder holds ${files}`);
    }
    // Every figure of the summary is of the weights after its last step.
    if (s.final.A.train_loss_step !== s.steps - 1 || s.rows.last_step >= s.steps) {
      throw new Error(`summary: ${s.steps} steps, ${JSON.stringify(s.final.A)}, rows ${s.rows}`);
    }
    if (!stderr.includes(`last checkpoint ${dir}/ck/${last}`)) throw new Error(stderr);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  ...opts,
  name: "deno task train with no flags learns: held-out accuracy above 70% after one epoch",
  async fn() {
    const r = await cli([]);
    if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
    const rows = r.stdout.trimEnd().split("\n");
    if (rows.length !== 71) throw new Error(`${rows.length} lines, expected a header and 70 steps`);
    const acc = [...r.stderr.matchAll(/(A|B|A1) *: held-out accuracy ([\d.]+)%/g)];
    console.error(acc.map((m) => `${m[1]} ${m[2]}%`).join(", "));
    if (acc.length !== 3 || acc.some((m) => Number(m[2]) <= 70)) {
      throw new Error(`summary: ${r.stderr}`);
    }
  },
});

Deno.test({
  ...opts,
  name:
    "--precision df64: the self-test passes at startup and A–B stays below 1e-9 (float32: above)",
  async fn() {
    const args = ["--runs", "A,B", "--steps", "20", "--quiet", "--format", "jsonl"];
    const df64 = await cli([...args, "--precision", "df64"]);
    if (df64.code !== 0) throw new Error(`exit ${df64.code}: ${df64.stderr}`);
    if (!/precision: df64, self-test passed on /.test(df64.stderr)) {
      throw new Error(`no self-test line: ${df64.stderr}`);
    }
    const worst = (out: string, column: string) =>
      Math.max(...out.trimEnd().split("\n").map((l) => JSON.parse(l)[column] ?? 0));
    const batch = worst(df64.stdout, "B.batch_maxprob"),
      probe = worst(df64.stdout, "B.dist_maxprob");
    const f32 = worst((await cli(args)).stdout, "B.batch_maxprob");
    console.error(
      `A–B max |Δsoftmax| over 20 steps: df64 ${batch} (batch), ${probe} (probe); f32 ${f32}`,
    );
    if (!(batch < 1e-9 && probe < 1e-9)) throw new Error(`df64 A–B ${batch}, ${probe}`);
    // The float32 run shows what df64 removes: its rounding alone is far above 1e-9.
    if (!(f32 > 1e-8)) throw new Error(`float32 A–B ${f32}`);
  },
});

Deno.test({
  ...opts,
  name: "--precision f64 on an adapter without shader-f64: one line naming the feature",
  async fn() {
    const r = await cli(["--precision", "f64", "--steps", "2"]);
    // An adapter with native float64 trains instead (not the lavapipe of CI).
    if (r.code === 0) return console.error("this adapter has shader-f64");
    assertOneLineError(r, 1, "--precision f64", "shader-f64");
  },
});

Deno.test({
  ...opts,
  name: "a group S that is not scale-invariant (large BatchNorm eps) gets a warning on stderr",
  async fn() {
    const quiet = await cli(["--runs", "A", "--steps", "3", "--quiet"]);
    const noisy = await cli(["--runs", "A", "--steps", "3", "--quiet", "--bn-eps", "1"]);
    if (quiet.code !== 0 || noisy.code !== 0) throw new Error(`exit ${quiet.code}/${noisy.code}`);
    if (quiet.stderr.includes("warning:")) throw new Error(`warning at eps 1e-5: ${quiet.stderr}`);
    if (!/warning: step \d+: run A has cos\(grad, w\)/.test(noisy.stderr)) {
      throw new Error(`no warning: ${noisy.stderr}`);
    }
  },
});

Deno.test({
  ...opts,
  name: "a GPU validation error ends a wait on the GPU with the error instead of hanging",
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-env",
        new URL("./fixtures/gpu_error.ts", import.meta.url).pathname,
      ],
      env: { XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    if (out.code !== 1 || !/GpuFailureError: GPU error: /.test(stderr)) {
      throw new Error(`exit ${out.code}: ${stderr}`);
    }
  },
});
