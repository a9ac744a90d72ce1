/**
 * Checkpoints, resume and interruption as a user meets them, through the command line: a run
 * split by a checkpoint prints the same rows, byte for byte, as the uninterrupted run; SIGINT
 * leaves a checkpoint, the summary and whole rows; the file is read back by a small reader
 * written here from the safetensors specification (not the tool's codec); bad checkpoints and
 * mismatched settings are refused with one line; divergence still writes the summary.
 */

import { GPU_PERMISSIONS } from "../shaders/webgpu.ts";
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const opts = { sanitizeResources: false, sanitizeOps: false };
const decoder = new TextDecoder();

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function command(args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...GPU_PERMISSIONS, MAIN, "--quiet", ...args],
    env: { XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function cli(args: string[]): Promise<Result> {
  const out = await command(args).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

function check(ok: boolean, what: string, r?: Result): void {
  if (!ok) throw new Error(r ? `${what}\nexit ${r.code}; stderr:\n${r.stderr}` : what);
}

/** The data rows of a CSV output (the header dropped). */
const rows = (csv: string) => csv.split("\n").slice(1).filter((l) => l !== "");

/** The one `error:` line of a failed run; checks the exit code and that stdout is empty. */
function errorLine(r: Result, code = 1): string {
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
  check(r.code === code && errors.length === 1, `expected exit ${code} and one error line`, r);
  check(r.stdout === "", `stdout is not empty: ${r.stdout.slice(0, 200)}`);
  return errors[0];
}

/**
 * Resumes after every checkpoint of `dir` it is given and checks the rows against `whole`
 * (the uninterrupted run's rows): the rows the resumed run prints are exactly the tail.
 */
async function assertResumes(args: string[], whole: string[], checkpoint: string) {
  const r = await cli([...args, "--resume", checkpoint]);
  check(r.code === 0, `resume from ${checkpoint} failed`, r);
  const resumed = rows(r.stdout);
  check(resumed.length > 0, "the resumed run printed no rows");
  const tail = whole.slice(whole.length - resumed.length);
  for (let i = 0; i < resumed.length; i++) {
    check(
      resumed[i] === tail[i],
      `row ${i} after resuming from ${checkpoint} differs:\n  ${resumed[i].slice(0, 160)}\n  ${
        tail[i].slice(0, 160)
      }`,
    );
  }
  return r;
}

/** Step of a checkpoint file name, `step-000000029.safetensors` -> 29. */
const stepOf = (path: string) => Number(/step-(\d+)/.exec(path)![1]);

/** The checkpoint files in `dir` (beside them, the folder's owner file run.json). */
async function checkpointsIn(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (/^step-\d+\.safetensors$/.test(e.name)) names.push(`${dir}/${e.name}`);
  }
  return names.sort();
}

Deno.test({
  ...opts,
  name: "resume: 60 steps = 30 steps + 30 resumed, byte for byte (default runs A,B,A1)",
  async fn() {
    const dir = await Deno.makeTempDir();
    const base = ["--every", "1", "--eval-every", "10"];
    const whole = await cli([...base, "--steps", "60"]);
    check(whole.code === 0, "the uninterrupted run failed", whole);
    const first = await cli([...base, "--steps", "30", "--checkpoint-dir", dir]);
    check(first.code === 0, "the first half failed", first);
    // The first half's last row also carries the probe (a run's last step always does).
    check(
      rows(first.stdout).slice(0, 29).join("\n") === rows(whole.stdout).slice(0, 29).join("\n"),
      "first half",
    );
    // A folder means its newest checkpoint: the one written at the end of the first half.
    const r = await assertResumes([...base, "--steps", "60"], rows(whole.stdout), dir);
    check(rows(r.stdout).length === 30, `resumed run printed ${rows(r.stdout).length} rows`);
    check(r.stderr.includes("resumed from"), "the summary names the checkpoint", r);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  ...opts,
  name:
    "resume: with Lemma-2 rescales (scheduled, applied, in flight), from every checkpoint; --every and --in-flight do not change the trajectory",
  async fn() {
    const dir = await Deno.makeTempDir();
    const args = [
      "--runs",
      "A,B,C",
      "--hidden",
      "64",
      "--wd",
      "0.05",
      "--rescale-above",
      "4.8",
      "--steps",
      "24",
    ];
    const whole = await cli(args);
    check(whole.code === 0, "the uninterrupted run failed", whole);
    const events = rows(whole.stdout).filter((l) => l.includes("rescale"));
    check(events.length >= 2, `expected rescale events, got ${events.length}`);
    const withCheckpoints = await cli([
      ...args,
      "--checkpoint-dir",
      dir,
      "--checkpoint-every",
      "1",
      "--keep",
      "100",
    ]);
    check(withCheckpoints.stdout === whole.stdout, "checkpointing changed the output");
    const files = await checkpointsIn(dir);
    check(files.length === 24, `${files.length} checkpoints, expected 24`);
    // Every checkpoint around the first rescale (decided at step 3, applied before step 6),
    // and a few later ones.
    for (const f of files.filter((f) => stepOf(f) <= 8 || stepOf(f) % 5 === 0)) {
      if (stepOf(f) === 23) continue; // the last step: nothing left to resume
      await assertResumes([...args, "--in-flight", "4"], rows(whole.stdout), f);
    }
    // Thinned output (every 5th step) still rescales at the same steps.
    const thin = await cli([...args, "--every", "5"]);
    const thinEvents = rows(thin.stdout).filter((l) => l.includes("rescale"));
    check(thinEvents.join("\n") === events.join("\n"), "--every changed the rescale events");
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  ...opts,
  name:
    "SIGINT: finishes the step, writes a checkpoint, whole rows and the summary, exits 130; resuming reproduces the run",
  async fn() {
    const dir = await Deno.makeTempDir();
    const summary = `${dir}/summary.json`, ckpt = `${dir}/ckpt`;
    const args = ["--hidden", "64", "--steps", "300", "--checkpoint-dir", ckpt];
    const whole = await cli(["--hidden", "64", "--steps", "300"]);
    check(whole.code === 0, "the uninterrupted run failed", whole);
    const child = command([...args, "--summary", summary]).spawn();
    const stderr = new Response(child.stderr).text();
    let out = "";
    const reader = child.stdout.getReader();
    // Interrupt once a few rows are out, mid-run.
    while (rows(out).length < 20) {
      const { value, done } = await reader.read();
      if (done) break;
      out += decoder.decode(value, { stream: true });
    }
    child.kill("SIGINT");
    for (let c = await reader.read(); !c.done; c = await reader.read()) {
      out += decoder.decode(c.value);
    }
    const status = await child.status;
    const r = { code: status.code, stdout: out, stderr: await stderr };
    check(r.code === 130, `exit ${r.code}, expected 130`, r);
    check(out.endsWith("\n"), "stdout ends mid-row");
    const printed = rows(out);
    check(printed.length < 300, "the run was not interrupted");
    check(printed.join("\n") === rows(whole.stdout).slice(0, printed.length).join("\n"), "rows");
    check(r.stderr.includes("summary:") && r.stderr.includes("stopped: SIGINT"), "summary", r);
    const saved = JSON.parse(await Deno.readTextFile(summary));
    check(saved.stopped === "SIGINT" && saved.steps === printed.length, "summary file", r);
    const files = await checkpointsIn(ckpt);
    check(files.length === 1, `${files.length} checkpoints`);
    check(stepOf(files[0]) === printed.length - 1, `checkpoint after step ${stepOf(files[0])}`);
    const resumed = await assertResumes(
      ["--hidden", "64", "--steps", "300"],
      rows(whole.stdout),
      ckpt,
    );
    check(rows(resumed.stdout).length === 300 - printed.length, "resumed rows");
    await Deno.remove(dir, { recursive: true });
  },
});

/**
 * A safetensors reader written from the format's specification, for this test only; every
 * tensor must have `dtype` (F32 from a float32 trainer, F64 from a df64 one), except a df64
 * pair's lo parts (`….df64_lo`, F32).
 */
function readSafetensors(bytes: Uint8Array, dtype: "F32" | "F64" = "F32") {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  check(8 + n <= bytes.length, "header length past the end");
  const header = JSON.parse(decoder.decode(bytes.subarray(8, 8 + n)));
  const data = 8 + n;
  check(data % 8 === 0, `data starts at ${data}, not 8-byte aligned`);
  const tensors = new Map<string, { shape: number[]; values: Float64Array }>();
  const spans: [number, number][] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype: found, shape, data_offsets: [begin, end] } = info as {
      dtype: string;
      shape: number[];
      data_offsets: [number, number];
    };
    const want = name.endsWith(".df64_lo") ? "F32" : dtype, size = want === "F32" ? 4 : 8;
    check(found === want, `${name}: dtype ${found}, expected ${want}`);
    check(end - begin === size * shape.reduce((a, b) => a * b, 1), `${name}: size`);
    check(data + end <= bytes.length, `${name}: past the end`);
    const values = new Float64Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i++) {
      const at = data + begin + size * i;
      values[i] = want === "F32" ? view.getFloat32(at, true) : view.getFloat64(at, true);
    }
    tensors.set(name, { shape, values });
    spans.push([begin, end]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  let at = 0;
  for (const [b, e] of spans) {
    check(b === at, `gap or overlap at byte ${at}`);
    at = e;
  }
  check(data + at === bytes.length, "trailing bytes");
  return { tensors, metadata: header.__metadata__ as Record<string, string> };
}

Deno.test({
  ...opts,
  name:
    "checkpoint file: read by an independent reader; names, PyTorch shapes, metadata; --save-init and --init-from replay a run",
  async fn() {
    const dir = await Deno.makeTempDir();
    const args = ["--hidden", "32", "--steps", "3", "--runs", "A,B"];
    const r = await cli([...args, "--checkpoint-dir", dir]);
    check(r.code === 0, "run failed", r);
    const [file] = await checkpointsIn(dir);
    const { tensors, metadata } = readSafetensors(await Deno.readFile(file));
    for (const run of ["A", "B"]) {
      const expect: Record<string, number[]> = {
        "fc0.weight": [32, 784],
        "fc0.weight.momentum": [32, 784],
        "bn0.weight": [32],
        "bn0.bias": [32],
        "bn0.running_mean": [32],
        "bn0.running_var": [32],
        "head.weight": [10, 32],
        "head.bias": [10],
        "head.weight.momentum": [10, 32],
      };
      for (const [name, shape] of Object.entries(expect)) {
        const t = tensors.get(`${run}/${name}`);
        check(t !== undefined, `${run}/${name} missing`);
        check(t!.shape.join() === shape.join(), `${run}/${name} shape [${t!.shape}]`);
        check(t!.values.every(Number.isFinite), `${run}/${name} not finite`);
      }
    }
    check(tensors.size === 2 * 12, `${tensors.size} tensors`);
    check(metadata.step === "2" && metadata.runs === "A,B", `metadata ${metadata.step}`);
    for (const v of Object.values(metadata)) check(typeof v === "string", "metadata values");
    const config = JSON.parse(metadata.config), schedule = JSON.parse(metadata.schedule);
    check(config.hidden.join() === "32" && config.steps === 3, "config in metadata");
    check(schedule.B.c_t > 1 && schedule.A.c_t === 1, `schedule ${metadata.schedule}`);
    // B's weights are c_t times A's (THEORY §3), read straight from the file.
    const a = tensors.get("A/fc0.weight")!.values, b = tensors.get("B/fc0.weight")!.values;
    const norm = (v: Float64Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    const ratio = norm(b) / norm(a);
    check(
      Math.abs(ratio / schedule.B.c_t - 1) < 1e-5,
      `norm ratio ${ratio} vs c_t ${schedule.B.c_t}`,
    );

    // --save-init writes run A's initial weights; --init-from them replays the run exactly.
    const init = `${dir}/init.safetensors`;
    const saved = await cli([...args, "--save-init", init]);
    check(saved.code === 0 && saved.stdout === "", "--save-init", saved);
    const w = readSafetensors(await Deno.readFile(init));
    check(
      w.tensors.size === 5 && w.tensors.has("A/fc0.weight"),
      `init tensors ${[...w.tensors.keys()]}`,
    );
    const plain = await cli(args), replay = await cli([...args, "--init-from", init]);
    check(
      plain.code === 0 && replay.stdout === plain.stdout,
      "--init-from changed the run",
      replay,
    );
    // A file of another model is one line naming the tensor.
    const wrong = await cli(["--hidden", "48", "--steps", "3", "--init-from", init]);
    const line = errorLine(wrong);
    check(line.includes(init) && line.includes("fc0.weight") && line.includes("shape"), line);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  ...opts,
  name:
    "df64 checkpoints: F64 tensors with each pair's lo (‖w_B‖/‖w_A‖ = c_t to 1e-12 in the file), resume byte for byte, f32 refused",
  async fn() {
    const dir = await Deno.makeTempDir();
    const args = ["--precision", "df64", "--hidden", "32", "--runs", "A,B", "--steps", "8"];
    const whole = await cli(args);
    check(whole.code === 0, "the uninterrupted run failed", whole);
    const first = await cli([...args, "--steps", "4", "--checkpoint-dir", dir]);
    check(first.code === 0, "the first half failed", first);
    const [file] = await checkpointsIn(dir);
    const { tensors, metadata } = readSafetensors(await Deno.readFile(file), "F64");
    check(tensors.has("B/fc0.weight.momentum.df64_lo"), "no lo parts in the file");
    const norm = (v: Float64Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    const ratio = norm(tensors.get("B/fc0.weight")!.values) /
      norm(tensors.get("A/fc0.weight")!.values);
    const c = JSON.parse(metadata.schedule).B.c_t;
    // float32 weights give the ratio to ~1e-7 (the resolution test above); df64 to ~1e-15.
    check(Math.abs(ratio / c - 1) < 1e-12, `norm ratio ${ratio} vs c_t ${c}`);
    const r = await assertResumes(args, rows(whole.stdout), file);
    check(rows(r.stdout).length === 4, `resumed run printed ${rows(r.stdout).length} rows`);
    // Another precision is another training setting: one line naming it.
    const f32 = await cli([...args.slice(2), "--resume", file]);
    const line = errorLine(f32);
    check(line.includes("precision") && line.includes("df64"), line);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  ...opts,
  name: "bad checkpoints: one line naming the file and the problem, exit 1, nothing overwritten",
  async fn() {
    const dir = await Deno.makeTempDir();
    const args = ["--hidden", "32", "--steps", "3", "--runs", "A,B"];
    const r = await cli([...args, "--checkpoint-dir", `${dir}/good`]);
    check(r.code === 0, "run failed", r);
    const [good] = await checkpointsIn(`${dir}/good`);
    const bytes = await Deno.readFile(good);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = decoder.decode(bytes.subarray(8, 8 + headerLength));
    /** The file with its header replaced by `text` (same length, padded with spaces). */
    const withHeader = (text: string) => {
      const out = bytes.slice();
      const enc = new TextEncoder().encode(text.padEnd(headerLength));
      check(enc.length === headerLength, `edited header is ${enc.length} bytes`);
      out.set(enc, 8);
      return out;
    };
    const h = JSON.parse(header);
    const [n0, n1] = ["A/fc0.weight", "A/fc0.weight.momentum"];
    const overlap = structuredClone(h);
    overlap[n1].data_offsets = h[n0].data_offsets;
    const dtype = structuredClone(h);
    dtype[n0].dtype = "F8";
    const missing = structuredClone(h);
    missing["A/zz.weight"] = missing[n0];
    delete missing[n0];
    const shape = structuredClone(h);
    shape[n0].shape = [784, 32]; // same size, the model's transpose
    const cases: [string, Uint8Array, string][] = [
      ["truncated", bytes.subarray(0, bytes.length - 100), "past the end"],
      ["tiny", bytes.subarray(0, 5), "too short"],
      [
        "header length",
        (() => {
          const b = bytes.slice();
          new DataView(b.buffer).setBigUint64(0, BigInt(bytes.length), true);
          return b;
        })(),
        "header length",
      ],
      ["bad json", withHeader(header.replace("{", "[")), "JSON"],
      ["dtype", withHeader(JSON.stringify(dtype)), "dtype"],
      ["overlap", withHeader(JSON.stringify(overlap)), "overlap"],
      ["missing", withHeader(JSON.stringify(missing)), "A/fc0.weight is missing"],
      ["shape", withHeader(JSON.stringify(shape)), "shape"],
    ];
    const outDir = `${dir}/out`;
    await Deno.mkdir(outDir);
    await Deno.writeTextFile(`${outDir}/keep.txt`, "x");
    for (const [name, content, fragment] of cases) {
      const path = `${dir}/${name}.safetensors`;
      await Deno.writeFile(path, content);
      const bad = await cli([
        ...args,
        "--steps",
        "6",
        "--resume",
        path,
        "--checkpoint-dir",
        outDir,
      ]);
      const line = errorLine(bad);
      check(line.includes(path) && line.includes(fragment), `${name}: ${line}`);
      const left = [...Deno.readDirSync(outDir)].map((e) => e.name).join();
      check(left === "keep.txt", `${name}: checkpoint folder changed: ${left}`);
    }
    // Settings that change the trajectory must match; output settings may differ.
    const other = await cli([
      "--hidden",
      "32",
      "--steps",
      "6",
      "--runs",
      "A,B",
      "--lr",
      "0.2",
      "--wd",
      "0.001",
      "--resume",
      good,
    ]);
    const line = errorLine(other);
    check(line.includes("--lr") && line.includes("--wd") && !line.includes("--steps"), line);
    const fine = await cli([
      ...args,
      "--steps",
      "6",
      "--format",
      "jsonl",
      "--every",
      "2",
      "--resume",
      good,
    ]);
    check(fine.code === 0, "output settings refused", fine);
    const done = await cli([...args, "--resume", good]);
    check(errorLine(done).includes("nothing is left to train"), done.stderr);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  ...opts,
  name:
    "divergence: names the run, step and quantity, still writes the summary, keeps the last good checkpoint, the state at the divergence apart",
  async fn() {
    const dir = await Deno.makeTempDir();
    const r = await cli([
      "--hidden",
      "32",
      "--steps",
      "60",
      "--lr-o",
      "100",
      "--checkpoint-dir",
      `${dir}/ck`,
      "--checkpoint-every",
      "1",
      "--summary",
      `${dir}/s.json`,
    ]);
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
    check(r.code === 1 && errors.length === 1, "expected exit 1 and one error line", r);
    check(/diverged at step \d+: run \w+ has (loss|S weight norm) /.test(errors[0]), errors[0]);
    const step = Number(/step (\d+)/.exec(errors[0])![1]);
    const s = JSON.parse(await Deno.readTextFile(`${dir}/s.json`));
    check(s.stopped === "diverged" && s.error.includes("diverged"), "summary file");
    // Whole rows up to the step that diverged (event rows included), none after it.
    const steps = rows(r.stdout).map((l) => Number(l.split(",")[0]));
    check(r.stdout.endsWith("\n") && steps.at(-1) === step, `rows end at step ${steps.at(-1)}`);
    const files = await checkpointsIn(`${dir}/ck`);
    check(files.length > 0 && stepOf(files.at(-1)!) < step, "a checkpoint after the divergence");
    // The state at the divergence, for inspection, under a name --resume never picks.
    const apart = [...Deno.readDirSync(`${dir}/ck`)].map((e) => e.name)
      .filter((n) => n.startsWith("diverged-step-"));
    check(apart.length === 1 && stepOf(apart[0]) >= step, `diverged state: ${apart}`);
    check(s.checkpoint === files.at(-1), `summary names ${s.checkpoint} as the last checkpoint`);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  ...opts,
  name: "a second SIGINT exits at once with 130, before the summary",
  async fn() {
    const child = command(["--steps", "300"]).spawn();
    const stdout = new Response(child.stdout).text();
    const reader = child.stderr.getReader();
    let err = "";
    /** Reads stderr until it contains `text`. */
    const until = async (text: string) => {
      while (!err.includes(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        err += decoder.decode(value, { stream: true });
      }
    };
    await until("data:");
    child.kill("SIGINT");
    // Signals of one kind sent back to back merge into one: wait until the first is taken.
    await until("finishing the step in flight");
    child.kill("SIGINT");
    for (let c = await reader.read(); !c.done; c = await reader.read()) {
      err += decoder.decode(c.value);
    }
    const { code } = await child.status;
    await stdout;
    check(code === 130, `exit ${code}, expected 130; stderr ${err}`);
    check(!err.includes("summary:"), `a summary after the second signal: ${err}`);
  },
});
