/**
 * End to end: a real short training (and a two-point sweep) rendered by `deno task report` and
 * opened in headless Chromium (Debian's `chromium`; `.ci/run` installs it): the page shows every
 * plot with drawn data marks, logs nothing to the console (no error, no failed load), and its
 * screenshot is a real picture. Skipped, saying why, only when Chromium is not installed.
 */

import { join } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;
const ENV = { XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1" };
const DENO_RUN = ["run", "--allow-read", "--allow-write", "--allow-env"];

function hasChromium(): boolean {
  try {
    return new Deno.Command("chromium", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

const chromium = hasChromium();
if (!chromium) {
  console.warn("report e2e: skipped: chromium is not installed (apt-get install chromium)");
}
const opts = { sanitizeResources: false, sanitizeOps: false, ignore: !chromium };

/** Runs deno with `args` in the repository root; stdout to `stdoutFile` when given. */
async function deno(args: string[], stdoutFile?: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...DENO_RUN, ...args],
    cwd: ROOT,
    env: ENV,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`deno ${args.join(" ")}: exit ${out.code}: ${stderr}`);
  if (stdoutFile) await Deno.writeFile(stdoutFile, out.stdout);
  return stderr;
}

/** Headless Chromium on `page` with a fresh profile; its stdout and stderr. */
async function browse(dir: string, page: string, ...args: string[]): Promise<[string, string]> {
  const profile = await Deno.makeTempDir({ dir, prefix: "profile-" });
  const out = await new Deno.Command("chromium", {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      `--user-data-dir=${profile}`,
      "--enable-logging=stderr",
      "--v=0",
      ...args,
      `file://${page}`,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const dec = new TextDecoder();
  return [dec.decode(out.stdout), dec.decode(out.stderr)];
}

/** Checks the page in Chromium: `plots` plots, each with data marks, and no console message. */
async function checkPage(dir: string, page: string, plots: number): Promise<void> {
  const [dom, log] = await browse(dir, page, "--dump-dom");
  const found = /<body data-plots="(\d+)" data-plots-drawn="(\d+)"/.exec(dom);
  if (!found) throw new Error(`the page's script did not run: ${dom.slice(0, 300)}`);
  if (Number(found[1]) !== plots || Number(found[2]) !== plots) {
    throw new Error(`${found[1]} plots, ${found[2]} with data marks; expected ${plots}`);
  }
  const console = log.split("\n").filter((l) => /:CONSOLE[:(]|Uncaught|Failed to load/.test(l));
  if (console.length > 0) throw new Error(`console messages:\n${console.join("\n")}`);
}

/** Runs `fn` in a fresh temporary folder, removed afterwards. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "report-e2e-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Checks that `png` is a PNG of the window's width and more than a blank page's bytes. */
function checkScreenshot(png: string): void {
  const bytes = Deno.readFileSync(png);
  const signature = [0x89, 0x50, 0x4e, 0x47];
  if (!signature.every((b, i) => bytes[i] === b)) throw new Error("not a PNG");
  const width = new DataView(bytes.buffer).getUint32(16);
  if (width !== 1400) throw new Error(`screenshot width ${width}`);
  if (bytes.length < 30_000) throw new Error(`screenshot of ${bytes.length} bytes: blank?`);
}

Deno.test({
  ...opts,
  name: "report e2e: a real training's report shows its 10 plots in Chromium, no console error",
  fn: () =>
    inTempDir(async (dir) => {
      const [csv, summary, page, png] = ["out.csv", "S.json", "report.html", "report.png"]
        .map((f) => join(dir, f));
      const train = ["main.ts", "--hidden", "32", "--steps", "30", "--runs", "A,B,A1", "--quiet"];
      await deno([...train, "--summary", summary], csv);
      const log = await deno(["report/main.ts", csv, "--summary", summary, "-o", page]);
      if (!log.startsWith(`report: ${page}, 10 plots`)) throw new Error(log);
      await checkPage(dir, page, 10);
      const shot = [`--screenshot=${png}`, "--window-size=1400,3000", "--hide-scrollbars"];
      await browse(dir, page, ...shot);
      checkScreenshot(png);
    }),
});

Deno.test({
  ...opts,
  name: "report e2e: a two-point sweep run from its configs gives one comparison page",
  fn: () =>
    inTempDir(async (dir) => {
      const sw = join(dir, "sw");
      const grid = ["--grid", "seed=0..1", "--hidden", "16", "--steps", "20"];
      await deno(["report/sweep.ts", ...grid, "--out", sw]);
      for (const i of [0, 1]) {
        const config = ["--config", join(sw, `${i}.json`), "--format", "jsonl", "--quiet"];
        await deno(
          ["main.ts", ...config, "--summary", join(sw, `${i}.summary.json`)],
          join(sw, `${i}.jsonl`),
        );
      }
      const page = join(dir, "sweep.html");
      await deno(["report/main.ts", sw, "-o", page]);
      const html = await Deno.readTextFile(page);
      if (!html.includes("seed=1")) throw new Error("the grid point is not on the page");
      await checkPage(dir, page, 3);
    }),
});
