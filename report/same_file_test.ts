/**
 * The output is never an input: the same path, another spelling of it, a symbolic link to the
 * input (or through a linked folder) and a hard link are all refused; stdout and other files
 * are not.
 */

import { join } from "node:path";
import { ReportError } from "./errors.ts";
import { type InputFile, refuseOutputAmongInputs } from "./same_file.ts";

async function assertRefused(out: string, inputs: InputFile[], message: string): Promise<void> {
  try {
    await refuseOutputAmongInputs(out, inputs);
  } catch (e) {
    if (!(e instanceof ReportError)) throw e;
    if (e.message !== message) throw new Error(`${JSON.stringify(e.message)} !== ${message}`);
    return;
  }
  throw new Error(`-o ${out} accepted; expected ${message}`);
}

Deno.test("an output that is an input, by any name, is refused; stdout and others are not", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = join(dir, "run.csv");
    Deno.writeTextFileSync(run, "step\n");
    const inputs = [{ path: run, role: "the result file" }];
    await assertRefused(
      run,
      inputs,
      `-o: ${run} is also an input (the result file); choose another output`,
    );
    // Other names of it: another spelling, a symbolic link, a hard link.
    const dotted = `${dir}/./sub/../run.csv`, link = join(dir, "link.html");
    const hard = join(dir, "hard.html");
    Deno.mkdirSync(join(dir, "sub"));
    Deno.symlinkSync(run, link);
    Deno.linkSync(run, hard);
    for (const other of [dotted, link, hard]) {
      await assertRefused(
        other,
        inputs,
        `-o: ${other} is also an input (the result file ${run}); choose another output`,
      );
    }
    // Through a linked folder: the output's folder is resolved even where the file is new.
    Deno.symlinkSync(dir, join(dir, "again"));
    const viaFolder = join(dir, "again", "s.json");
    await assertRefused(
      viaFolder,
      [...inputs, { path: join(dir, "s.json"), role: "the --summary file" }],
      `-o: ${viaFolder} is also an input (the --summary file ${join(dir, "s.json")}); ` +
        "choose another output",
    );
    await refuseOutputAmongInputs("-", inputs);
    await refuseOutputAmongInputs(join(dir, "report.html"), inputs);
    await refuseOutputAmongInputs(join(dir, "again", "report.html"), inputs);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
