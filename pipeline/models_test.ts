/**
 * The convolutional models end to end through the pipeline on small generated CIFAR-10-format
 * files (32×32×3, channel-major on disk): preresnet and cnn train in lockstep with augmentation,
 * run B stays equivalent to A, and the summary names the model and its groups.
 */

import { parse } from "csv-parse/sync";
import { join } from "node:path";
import { validateConfig } from "./config.ts";
import { runPipeline } from "./pipeline.ts";
import { gpuTest } from "../shaders/test_gpu.ts";
import { cifarBytes, tempDir, writeData } from "../stages/data/test_fixtures.ts";
import { createRng } from "../core/prng.ts";

/** A CIFAR-10 folder of `n` training and 24 test images whose colour depends on the label. */
async function cifarFolder(dir: string, n: number): Promise<void> {
  const rng = createRng(4);
  const images = (count: number) => {
    const labels = Array.from({ length: count }, () => rng.int(10));
    return cifarBytes(labels, (r, b) => (labels[r] * 20 + (b >> 10) * 30 + rng.int(60)) & 0xff);
  };
  await writeData(join(dir, "data_batch_1.bin"), images(n));
  await writeData(join(dir, "test_batch.bin"), images(24));
}

for (
  const [model, extra] of [
    ["preresnet", { depth: 8, width: 4 }],
    ["cnn", {}],
  ] as const
) {
  gpuTest(`${model} on generated CIFAR-10 files: lockstep A, B with flip and crop`, async (gpu) => {
    await using tmp = await tempDir();
    await cifarFolder(tmp.dir, 40);
    let text = "";
    const decoder = new TextDecoder();
    const log: string[] = [];
    const summary = await runPipeline(
      validateConfig({
        data: tmp.dir,
        model,
        ...extra,
        runs: "A,B",
        "batch-size": 8,
        probe: 8,
        steps: 6,
        augment: "flip,crop",
        "eval-every": 3,
        quiet: true,
      }, "test"),
      gpu,
      {
        stdout: new WritableStream({ write: (c) => void (text += decoder.decode(c)) }),
        log: (line) => log.push(line),
      },
    );
    const rows = parse(text, { columns: true }) as Record<string, string>[];
    if (rows.length !== 6) throw new Error(`${rows.length} rows`);
    for (const row of rows) {
      const d = Number(row["B.batch_maxprob"]), ratio = Number(row["B.norm_ratio"]);
      if (!(d < 1e-4)) throw new Error(`step ${row.step}: A-B ${d}`);
      const probe = row["B.dist_maxprob"];
      if (probe !== "" && !(Number(probe) < 1e-4)) throw new Error(`step ${row.step}: ${probe}`);
      if (!(Math.abs(ratio / Number(row["B.c_pred"]) - 1) < 1e-5)) {
        throw new Error(`step ${row.step}: norm ratio ${ratio} vs ${row["B.c_pred"]}`);
      }
    }
    if (!log.some((l) => l.includes("32x32x3"))) throw new Error(`data line: ${log[0]}`);
    const expected = model === "cnn" ? "cnn 32-64-64" : "preresnet-8 (width 4)";
    if (summary.model.description !== expected || !(summary.model.s > 0)) {
      throw new Error(`summary model ${JSON.stringify(summary.model)}`);
    }
    if (summary.model.s + summary.model.o !== summary.model.parameters) throw new Error("counts");
  });
}
