/** Output paths checked at startup: a missing, non-folder or unwritable folder, a folder as file. */

import { checkOutputPath, checkOutputsApart } from "./paths.ts";
import { type Config, ConfigError, defaultConfig } from "./config.ts";
import { assert } from "../stages/data/test_fixtures.ts";

/** Awaits the check and returns its error message ("" when it passed). */
async function failure(flag: string, path: string): Promise<string> {
  try {
    await checkOutputPath(flag, path);
    return "";
  } catch (e) {
    assert(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert(!/[\r\n]/.test(e.message), `message "${e.message}" should be one line`);
    assert(!e.message.includes("--allow"), `message "${e.message}" mentions a Deno flag`);
    return e.message;
  }
}

Deno.test("checkOutputPath: a file in a writable folder passes and leaves nothing behind", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert(await failure("--summary", `${dir}/s.json`) === "", "new file");
    await Deno.writeTextFile(`${dir}/old.json`, "{}");
    assert(await failure("--summary", `${dir}/old.json`) === "", "existing file");
    const left = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert(left.length === 1 && left[0] === "old.json", `left behind: ${left}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkOutputPath: a missing folder, a file as folder, a folder as file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = await failure("--summary", "/nonexistent/dir/s.json");
    assert(
      missing === "--summary: cannot write /nonexistent/dir/s.json: folder does not exist",
      missing,
    );
    await Deno.writeTextFile(`${dir}/f`, "");
    const notDir = await failure("--out", `${dir}/f/s.json`);
    assert(notDir === `--out: cannot write ${dir}/f/s.json: ${dir}/f is not a folder`, notDir);
    const isDir = await failure("--summary", dir);
    assert(isDir === `--summary: cannot write ${dir}: it is a folder`, isDir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkOutputPath: a place Deno may not write (/proc) names no Deno flag", async () => {
  const message = await failure("--summary", "/proc/x");
  assert(message.startsWith("--summary: cannot write /proc/x: "), message);
  assert(message.includes("not allowed"), message);
});

Deno.test("checkOutputsApart: an output that is an input, another output or a checkpoint name is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = `${dir}/data.csv`, link = `${dir}/link.json`;
    await Deno.writeTextFile(data, "label,a\n");
    await Deno.symlink(data, link);
    const base = defaultConfig();
    const refusal = async (config: Partial<Config>, configFile?: string) => {
      try {
        await checkOutputsApart({ ...base, ...config }, configFile, config.data);
        return "";
      } catch (e) {
        assert(e instanceof ConfigError, String(e));
        return e.message;
      }
    };
    const via = await refusal({ data: data, summary: link });
    assert(
      via === `--summary: ${link} is also an input (--data ${data}); choose another path`,
      via,
    );
    const cfg = await refusal({ summary: `${dir}/./c.json` }, `${dir}/c.json`);
    assert(cfg.includes("is also an input (--config"), cfg);
    const both = await refusal({ summary: `${dir}/w.st`, "save-init": `${dir}/w.st` });
    assert(both.includes("is also another output (--save-init"), both);
    const ck = await refusal({ summary: `${dir}/ck/run.json`, "checkpoint-dir": `${dir}/ck` });
    assert(ck.includes("is a name the checkpoint folder uses"), ck);
    const inData = await refusal({ data: dir, summary: `${dir}/s.json` });
    assert(inData.includes("lies inside the data folder"), inData);
    const rotated = await refusal({
      "init-from": `${dir}/ck/step-000000001.safetensors`,
      "checkpoint-dir": `${dir}/ck`,
    });
    assert(rotated.includes("may be deleted by the checkpoint rotation"), rotated);
    assert(await refusal({ summary: `${dir}/s.json`, "checkpoint-dir": `${dir}/ck` }) === "", "ok");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
