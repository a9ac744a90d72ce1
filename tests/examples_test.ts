/**
 * The README's examples and every `--help` example run as written, shortened (issue 18).
 *
 * Examples are every command line of the README's ```sh blocks (continuations joined, `#`
 * comments dropped) and every line of the train, report and sweep `--help` texts that mentions
 * `deno task`. `EXAMPLES` says how each one is run; an example missing from it, or an entry no
 * longer in the README or a help text, fails the test, so the table stays complete.
 *
 * Each group of examples runs in a fresh folder that mirrors the repository (deno.json and
 * deno.lock copied, everything else symlinked), so `deno task ...` works there and relative
 * outputs land there. The command text runs with `sh -c` unchanged; it is shortened by a `deno`
 * wrapper first on PATH, which appends `SHORT` (plus a model's own size flags) to every
 * `deno task train` and a seed and step count to `deno task onset`. `parseArgs` lets the last
 * flag win, and the `lines` checks below confirm that a `--steps 1000` became 2 steps. `HOME` is
 * the folder, so `~/cifar-10-batches-bin` is the fixture written there.
 */

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const opts = { sanitizeResources: false, sanitizeOps: false };

/**
 * Flags appended to every `deno task train`: 2 steps; the last flag wins. A small batch and
 * held-out split too: the CNN's 2 steps at batch 128, evaluated on 1,000 held out, take 30 s here.
 */
const SHORT = "--steps 2 --batch-size 16 --heldout 32 --probe 16 --quiet";
/** Appended unless the example sets it: eval-mode passes cost time and are not what it shows. */
const SHORT_EVAL = "--eval-every 0";
/** Per model, as the wrapper adds them (cnn: `SHORT` alone). */
const SHORT_MODEL = { mlp: "--hidden 8", preresnet: "--depth 8 --width 4" };
/** Seconds one command may take before `timeout` stops its whole process group. */
const TIMEOUT_S = 150;
/** Groups run at once: the machine has 2 cores and each run is mostly one busy thread. */
const POOL = 3;

/** A fixture an example reads, written into its folder before it runs. */
type Fixture = "cifar" | "csv";

/** How one example is run and checked. */
interface How {
  /** Why it is not run; nothing else applies. */
  skip?: string;
  /** Textual replacements [from, to], applied in order, with why. */
  subs?: [string, string][];
  why?: string;
  /** Examples of one group share a folder and run in table order (later ones read outputs). */
  group?: string;
  /** Extra environment, e.g. a loop index the surrounding recipe would set. */
  env?: Record<string, string>;
  fixtures?: Fixture[];
  /** Outputs that must exist and not be empty afterwards; "-" is stdout. */
  out?: string[];
  /** Exact line counts of outputs ("-": stdout): proves the appended `--steps 2` won. */
  lines?: Record<string, number>;
  /** The documented exit code, when not 0. */
  code?: number;
}

const sweepDir: [string, string][] = [["DIR", "sw"]];

/**
 * Every example, keyed by its exact text (README: after joining and dropping comments; help: the
 * trimmed line). Group "sweep" first creates `sw/` with the README's own `deno task sweep` line.
 */
const EXAMPLES: Record<string, How> = {
  // README: quick start
  "npm install -g deno@2.9.6 && apt-get install -y mesa-vulkan-drivers": {
    skip: "installs Deno and Mesa system-wide (network, root); this test already runs on them",
  },
  "deno task train > metrics.csv": { out: ["metrics.csv"], lines: { "metrics.csv": 3 } },
  "deno task test": { skip: "the whole test suite (minutes), this file included" },
  // README: results (the float32 line recurs under Examples)
  "deno task train --steps 1000 --summary run.json > run.csv": {
    out: ["run.csv", "run.json"],
    lines: { "run.csv": 3 },
  },
  "deno task train --precision df64 --steps 1000 --runs A,B,A1 --probe-every 1 > run.csv": {
    out: ["run.csv"],
    lines: { "run.csv": 3 },
  },
  // README: checkpoints
  "deno task train --epochs 5 --checkpoint-dir ck --checkpoint-every 100 > part1.csv": {
    group: "checkpoint",
    out: ["part1.csv", "ck/step-000000001.safetensors"],
  },
  "deno task train --epochs 5 --checkpoint-dir ck --resume ck > part2.csv": {
    group: "checkpoint",
    // The first run ends at step 1; resuming needs steps left to train.
    env: { WD_EXAMPLE_STEPS: "4" },
    out: ["part2.csv", "ck/step-000000003.safetensors"],
    lines: { "part2.csv": 3 },
  },
  // README: Examples
  "deno task train --runs A,B,A1,A2,C > all.csv": { out: ["all.csv"] },
  'deno task train --schedule step --milestones 0.5,0.75 --warmup 20 --format jsonl --every 10 | jq -c \'{step, d: .["B.dist_maxprob"], c: .["B.c_pred"], r: .["B.norm_ratio"]}\'':
    { out: ["-"], lines: { "-": 2 } },
  "deno task train --runs A,B --explr closed-zero --steps 50 | head -n 5": { out: ["-"] },
  "deno task train --runs A,B --bn-eps-mode fixed": { out: ["-"] },
  "deno task train --running-stats plain --eval-every 10": { out: ["-"] },
  "deno task train --runs A,B --wd 0.05 --rescale-above 13.5 --steps 40": { out: ["-"] },
  "deno task train --runs A --wd-style decoupled --bn-eps 0 --lr 0.1 --lr-o 0.1 > w1.csv": {
    out: ["w1.csv"],
  },
  "deno task train --runs A --wd-style decoupled --bn-eps 0 --lr 0.4 --lr-o 0.1 --init-scale 2 > w2.csv":
    { out: ["w2.csv"] },
  'echo \'{"runs": ["A", "B"], "bn-eps": 0, "schedule": "cosine"}\' > cfg.json': {
    group: "config",
    out: ["cfg.json"],
  },
  "deno task train --config cfg.json --steps 200": {
    group: "config",
    out: ["-"],
    lines: { "-": 3 },
  },
  "deno task train --data mydata.csv --label-column class": { fixtures: ["csv"], out: ["-"] },
  "deno task train --data ~/cifar-10-batches-bin --hidden 512,256": {
    fixtures: ["cifar"],
    out: ["-"],
  },
  "deno task inspect --model models/gn_preresnet.ts": { out: ["-"] },
  // README: tuning (the cache lands in the group's folder, its HOME)
  "deno task tune": {
    group: "tune",
    subs: [["deno task tune", "deno task tune --hidden 8 --batch-size 16 --probe 16 --budget 3"]],
    why: "a small MLP and a short budget",
    out: ["-"],
  },
  "deno task tune --model cnn --budget 300": {
    group: "tune",
    subs: [["--budget 300", "--budget 3 --batch-size 4 --probe 4 --heldout 32"]],
    why: "a small batch and a short budget",
    out: ["-"],
  },
  "deno task train --tune on": {
    group: "tune",
    subs: [["--tune on", "--tune on --budget 3"]],
    why: "a short budget",
    out: ["-"],
  },
  "deno task train --model models/gn_preresnet.ts --steps 200 > gn.csv": {
    out: ["gn.csv"],
    lines: { "gn.csv": 3 },
  },
  "deno task train --model cnn --steps 200 > cnn.csv": {
    out: ["cnn.csv"],
    lines: { "cnn.csv": 3 },
  },
  "deno task train --model preresnet --depth 20 --data ~/cifar-10-batches-bin --augment flip,crop --schedule step --milestones 0.5,0.75 --epochs 1 > preresnet20.csv":
    { fixtures: ["cifar"], out: ["preresnet20.csv"], lines: { "preresnet20.csv": 3 } },
  "deno task wgsl batchnorm.forward.train": { out: ["-"] },
  "deno task onset --seeds 5 --steps 300 --runs A,B,A1,A2,C > onset.json": {
    out: ["onset.json"],
  },
  "deno task train --steps 300 | deno task report -o report.html": { out: ["report.html"] },
  // README: report and sweeps
  "deno task train --summary run.json > run.csv": { group: "report", out: ["run.csv", "run.json"] },
  "deno task report run.csv --summary run.json -o report.html": {
    group: "report",
    out: ["report.html"],
  },
  "deno task train --format jsonl | deno task report -o live.html": {
    group: "report",
    out: ["live.html"],
  },
  // README: the Slurm array script, one array task
  "i=$SLURM_ARRAY_TASK_ID": { skip: "sets i for the next line, which runs with i=2" },
  "deno task train --config sw/$i.json > sw/$i.jsonl": {
    group: "sweep",
    env: { i: "2" },
    out: ["sw/2.jsonl", "sw/2.summary.json"],
  },
  "seq 0 19 | xargs -P 2 -I{} sh -c 'deno task train --config sw/{}.json --quiet > sw/{}.jsonl'": {
    group: "sweep",
    subs: [["seq 0 19", "seq 0 1"]],
    why: "2 of the 20 points",
    out: ["sw/0.jsonl", "sw/1.jsonl", "sw/0.summary.json", "sw/1.summary.json"],
  },
  "seq 0 19 | xargs -P 4 -I{} sh -c 'deno task train --config sw/{}.json --adapter $(({} % 4)) --quiet > sw/{}.jsonl'":
    {
      group: "sweep",
      subs: [["seq 0 19", "seq 4 4 8"]],
      why: "points 4 and 8: both on adapter 0, the one index every machine with a GPU has",
      out: ["sw/4.jsonl", "sw/8.jsonl", "sw/4.summary.json", "sw/8.summary.json"],
    },
  // train --help
  "Usage: deno task train [flags]": { skip: "usage synopsis (the README runs train often)" },
  "--adapter         adapter, by index or part of its name as deno task gpus lists them (default: $WD_ADAPTER, else the implementation's choice)":
    {
      subs: [[
        "--adapter         adapter, by index or part of its name as deno task gpus lists them (default: $WD_ADAPTER, else the implementation's choice)",
        "deno task gpus",
      ]],
      why: "the command it names",
      out: ["-"],
    },
  "names). deno task inspect [flags] prints the model they choose (graph, group S and why), no GPU.":
    { skip: "names the inspect command (the README's inspect line runs)" },
  "deno task tune [flags] tunes the kernel tilings of the step they choose on this GPU (--budget).":
    { skip: "names the tune command (the README's tune lines run)" },
  "--budget          seconds deno task tune and --tune on may spend tuning (default: 60)": {
    skip: "names the tune command (the README's tune lines run)",
  },
  // report --help
  "Usage: deno task report [FILE ... | DIR | -] [-o report.html] [--summary FILE]": {
    skip: "usage synopsis (the README's report lines run)",
  },
  "deno task train --summary s.json | deno task report --summary s.json -o run.html": {
    out: ["run.html", "s.json"],
  },
  "Several result files, or a sweep folder (deno task sweep --out DIR), give one comparison page.":
    { skip: "mentions the sweep, which group sweep creates with the README's own line" },
  // sweep --help
  "Usage: deno task sweep --grid 'NAME=VALUES ...' --out DIR [train flags]": {
    skip: "usage synopsis (group sweep runs the README's sweep line)",
  },
  "deno task train --config DIR/$INDEX.json > DIR/$INDEX.jsonl": {
    group: "sweep",
    subs: sweepDir,
    why: "DIR and INDEX are placeholders: the sweep's folder, point 5",
    env: { INDEX: "5" },
    out: ["sw/5.jsonl", "sw/5.summary.json"],
  },
  "then draw the comparison with: deno task report DIR -o sweep.html": {
    group: "sweep",
    subs: [["then draw the comparison with: ", ""], ...sweepDir],
    why: "the command in the sentence, on the sweep's folder",
    out: ["sweep.html"],
  },
  "Any other flag is a train flag (deno task train --help), the same for every point. Refused:": {
    subs: [[
      "Any other flag is a train flag (deno task train --help), the same for every point. Refused:",
      "deno task train --help",
    ]],
    why: "the command in the sentence",
    out: ["-"],
  },
};

/** One example as found, with where. */
interface Found {
  text: string;
  where: string;
}

/** Drops a `#` comment that starts a word outside quotes. */
function stripComment(line: string): string {
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === quote) quote = "";
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === "#" && (i === 0 || /\s/.test(line[i - 1]))) return line.slice(0, i);
  }
  return line;
}

/** The command lines of every ```sh block of `markdown`. */
function readmeExamples(markdown: string, file = "README.md"): Found[] {
  const lines = markdown.split("\n");
  const found: Found[] = [];
  let inSh = false, inOther = false;
  for (let i = 0; i < lines.length; i++) {
    const fence = /^\s*```(\S*)/.exec(lines[i]);
    if (fence) {
      if (inSh || inOther) inSh = inOther = false;
      else if (/^(sh|bash|shell)$/.test(fence[1])) inSh = true;
      else inOther = true;
      continue;
    }
    if (!inSh) continue;
    const start = i;
    let text = lines[i];
    // Backslash continuations join with one space (inside quotes too: `sh -c` sees the same).
    while (/\\$/.test(text) && i + 1 < lines.length) {
      text = text.slice(0, -1).trimEnd() + " " + lines[++i].trim();
    }
    text = stripComment(text).trim();
    if (text) found.push({ text, where: `${file}:${start + 1}` });
  }
  return found;
}

/** The lines of a `--help` text that mention `deno task`, trimmed. */
function helpExamples(help: string, name: string): Found[] {
  return help.split("\n").filter((l) => l.includes("deno task")).map((l) => ({
    text: l.trim(),
    where: `${name} --help`,
  }));
}

/** The README's own sweep line, with its placeholders filled: creates `sw/` for group sweep. */
function sweepLine(readme: string): string {
  const m = /`(deno task sweep --grid '[^'`]*' \[train flags\] --out DIR)`/.exec(readme);
  if (!m) throw new Error("README: no `deno task sweep --grid '...' [train flags] --out DIR` line");
  // The grid's 20 points only write files; the shortened train flags keep each point's config
  // (and config_hash) equal to what the wrapper runs, so the sweep report accepts the results.
  return m[1].replace("[train flags]", `${SHORT} ${SHORT_EVAL} ${SHORT_MODEL.mlp}`)
    .replace("DIR", "sw");
}

/** The `deno` first on PATH: shortens train and onset, passes everything else through. */
function wrapper(realDeno: string): string {
  return `#!/bin/sh
# Shortens the README's runs; the last flag wins in parseArgs, so appending is enough.
real=${JSON.stringify(realDeno)}
if [ "$1" = task ] && [ "$2" = train ]; then
  model=mlp; eval=; help=; prev=
  for a in "$@"; do
    [ "$prev" = --model ] && model=$a
    case $a in --model=*) model=\${a#--model=};; --eval-every|--eval-every=*) eval=1;; --help) help=1;; esac
    prev=$a
  done
  if [ -z "$help" ]; then
    set -- "$@" ${SHORT.replace("--steps 2", '--steps "${WD_EXAMPLE_STEPS:-2}"')}
    [ -n "$eval" ] || set -- "$@" ${SHORT_EVAL}
    case $model in
      mlp) set -- "$@" ${SHORT_MODEL.mlp};;
      preresnet) set -- "$@" ${SHORT_MODEL.preresnet};;
    esac
  fi
elif [ "$1" = task ] && [ "$2" = onset ]; then
  set -- "$@" --seeds 1 --steps 2 -- ${
    SHORT.replace("--steps 2 ", "").replace(" --quiet", "")
  } ${SHORT_MODEL.mlp}
fi
exec "$real" "$@"
`;
}

/** A deterministic byte stream (an LCG), so fixtures are the same every run. */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

/** Writes a fixture of the kind the README's data examples read. */
async function writeFixture(dir: string, kind: Fixture): Promise<void> {
  if (kind === "cifar") {
    // CIFAR-10 binary: records of 1 label byte and 3,072 pixel bytes; 40 to train, 32 held out.
    const folder = `${dir}/cifar-10-batches-bin`;
    await Deno.mkdir(folder);
    const batch = async (name: string, records: number, seed: number) => {
      const data = bytes(records * 3073, seed);
      for (let r = 0; r < records; r++) data[r * 3073] = (r + seed) % 10;
      await Deno.writeFile(`${folder}/${name}`, data);
    };
    for (let b = 1; b <= 5; b++) await batch(`data_batch_${b}.bin`, 8, b);
    await batch("test_batch.bin", 32, 6);
  } else {
    // A CSV with a header and a "class" column, not last, as a user's file might be.
    const noise = bytes(96 * 4, 7);
    const rows = ["x0,x1,class,x2,x3"];
    for (let r = 0; r < 96; r++) {
      const c = r % 3, f = (k: number) => (c + noise[r * 4 + k] / 255).toFixed(3);
      rows.push(`${f(0)},${f(1)},${c},${f(2)},${f(3)}`);
    }
    await Deno.writeTextFile(`${dir}/mydata.csv`, rows.join("\n") + "\n");
  }
}

/** A fresh folder that mirrors the repository, so `deno task` runs there. */
async function mirror(base: string, name: string): Promise<string> {
  const dir = `${base}/${name}`;
  await Deno.mkdir(dir);
  for await (const e of Deno.readDir(ROOT)) {
    if (e.name === ".git") continue;
    // Copied: deno task runs in the folder of the deno.json it finds, and deno may write the lock.
    if (e.name === "deno.json" || e.name === "deno.lock") {
      await Deno.copyFile(`${ROOT}/${e.name}`, `${dir}/${e.name}`);
    } else await Deno.symlink(`${ROOT}/${e.name}`, `${dir}/${e.name}`);
  }
  return dir;
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `text` with `sh -c` in `dir` under a time limit that ends the whole process group. */
async function sh(text: string, dir: string, env: Record<string, string>): Promise<Ran> {
  const out = await new Deno.Command("timeout", {
    args: ["-k", "5", String(TIMEOUT_S), "sh", "-c", text],
    cwd: dir,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** What is wrong with one example's run, or nothing. */
async function check(dir: string, how: How, r: Ran): Promise<string[]> {
  const bad: string[] = [];
  const want = how.code ?? 0;
  if (r.code !== want) {
    bad.push(`exit ${r.code}${r.code === 124 ? " (timed out)" : ""}, want ${want}`);
  }
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
  if (errors.length) bad.push(`stderr: ${errors.join(" | ")}`);
  for (const o of how.out ?? []) {
    const text = o === "-" ? r.stdout : await Deno.readTextFile(`${dir}/${o}`).catch(() => "");
    const name = o === "-" ? "stdout" : o;
    if (!text) bad.push(`${name} is missing or empty`);
    const n = how.lines?.[o];
    const got = text.split("\n").filter((l) => l).length;
    if (n !== undefined && text && got !== n) bad.push(`${name}: ${got} lines, want ${n}`);
  }
  if (bad.length && !errors.length) bad.push(`stderr tail: ${r.stderr.trim().slice(-600)}`);
  return bad;
}

/** Runs `f` over `items`, `n` at a time. */
async function pool<T>(items: T[], n: number, f: (t: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: n }, async () => {
      for (let t = queue.shift(); t !== undefined; t = queue.shift()) await f(t);
    }),
  );
}

/** `deno task NAME --help`'s stdout, run in the repository. */
async function help(name: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", name, "--help"],
    cwd: ROOT,
    env: { NO_COLOR: "1", XDG_RUNTIME_DIR: "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (out.code !== 0 || !text) throw new Error(`deno task ${name} --help: exit ${out.code}`);
  return text;
}

Deno.test("stripComment and readmeExamples find commands as the shell would", () => {
  const md = [
    "```sh",
    "# a comment",
    "deno task train --a \\",
    "  | jq '.x # not a comment'   # a comment",
    "",
    "```",
    "```yaml",
    "deno task train --not-sh",
    "```",
    "```",
    "$ deno task train --output-block",
    "```",
  ].join("\n");
  const got = readmeExamples(md).map((f) => f.text);
  const want = ["deno task train --a | jq '.x # not a comment'"];
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(JSON.stringify(got));
});

Deno.test({
  ...opts,
  name: "every README and --help example runs as written, shortened",
  async fn() {
    const readme = await Deno.readTextFile(`${ROOT}/README.md`);
    const found = [
      ...readmeExamples(readme),
      ...helpExamples(await help("train"), "train"),
      ...helpExamples(await help("report"), "report"),
      ...helpExamples(await help("sweep"), "sweep"),
    ];
    const problems: string[] = [];
    const texts = new Set(found.map((f) => f.text));
    for (const f of found) {
      if (!(f.text in EXAMPLES)) {
        problems.push(`unknown example (${f.where}), add it to EXAMPLES: ${f.text}`);
      }
    }
    for (const key of Object.keys(EXAMPLES)) {
      if (!texts.has(key)) problems.push(`stale EXAMPLES entry, no longer found: ${key}`);
    }

    // Groups in table order; ungrouped examples are groups of one.
    const groups = new Map<string, string[]>();
    for (const [text, how] of Object.entries(EXAMPLES)) {
      if (how.skip || !texts.has(text)) continue;
      const g = how.group ?? text;
      groups.set(g, [...(groups.get(g) ?? []), text]);
    }
    let setupSweep = "";
    try {
      setupSweep = sweepLine(readme);
    } catch (e) {
      problems.push((e as Error).message);
      groups.delete("sweep");
    }

    const info = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
    const denoDir: string = JSON.parse(new TextDecoder().decode(info.stdout)).denoDir;
    const base = await Deno.makeTempDir({ prefix: "wd-examples-" });
    try {
      await Deno.mkdir(`${base}/bin`);
      await Deno.writeTextFile(`${base}/bin/deno`, wrapper(Deno.execPath()), { mode: 0o755 });
      const envBase = {
        ...Deno.env.toObject(),
        NO_COLOR: "1",
        XDG_RUNTIME_DIR: "/tmp",
        PATH: `${base}/bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
        // HOME moves to the folder (for ~/cifar-10-batches-bin); the module cache stays.
        DENO_DIR: denoDir,
      };
      // The longest groups first, so the pool does not end on one of them alone.
      const order = [...groups.entries()].sort((a, b) => b[1].length - a[1].length);
      let n = 0;
      await pool(order, POOL, async ([name, members]) => {
        const dir = await mirror(base, `g${n++}`);
        const env = { ...envBase, HOME: dir };
        const kinds = new Set(members.flatMap((t) => EXAMPLES[t].fixtures ?? []));
        for (const k of kinds) await writeFixture(dir, k);
        if (name === "sweep") {
          const r = await sh(setupSweep, dir, env);
          const bad = await check(dir, { out: ["sw/manifest.json", "sw/19.json"] }, r);
          if (bad.length) {
            problems.push(`sweep setup \`${setupSweep}\`: ${bad.join("; ")}`);
            return;
          }
        }
        for (const text of members) {
          const how = EXAMPLES[text];
          let cmd = text;
          for (const [from, to] of how.subs ?? []) cmd = cmd.replaceAll(from, to);
          const r = await sh(cmd, dir, { ...env, ...how.env });
          const bad = await check(dir, how, r);
          if (bad.length) {
            const ran = cmd === text ? "" : ` (ran: ${cmd})`;
            problems.push(`${text}${ran}: ${bad.join("; ")}`);
          }
        }
      });
    } finally {
      await Deno.remove(base, { recursive: true });
    }
    if (problems.length) {
      throw new Error(`${problems.length} example problem(s):\n- ${problems.join("\n- ")}`);
    }
  },
});

Deno.test({
  ...opts,
  name: "README: its copy of deno task train --help is the program's",
  async fn() {
    const readme = await Deno.readTextFile(`${ROOT}/README.md`);
    const text = await help("train");
    if (!readme.includes(text.trimEnd() + "\n```")) {
      throw new Error("README's --help block differs from `deno task train --help`: paste it anew");
    }
  },
});
