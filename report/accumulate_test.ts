/**
 * Accumulating rows: onsets by the trainer's rule, the derived norm-ratio difference, events,
 * last values and the runs; then the run page built from them (tables, plots, no external URL).
 */

import { accumulate, REL_DIFF } from "./accumulate.ts";
import { readRows } from "./input.ts";
import { runPage } from "./page_run.ts";
import type { Row } from "./rows.ts";
import { syntheticCsv } from "./test_fixtures.ts";

function assertEquals(a: unknown, b: unknown): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(`${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
  }
}

async function* rows(list: Row[]): AsyncGenerator<Row> {
  for (const r of list) yield r;
}

const step = (s: number, values: Record<string, number | undefined>): Row => ({
  kind: "step",
  step: s,
  epoch: 0,
  values: { "A.loss": 1, "A.lr": 0.1, "B.loss": 1, "B.lr": 0.1, ...values },
});

Deno.test("onsets follow the summary's rule: first metered step above, NaN never passes", async () => {
  const d = await accumulate(
    rows([
      step(0, { "B.dist_maxprob": 0, "B.norm_ratio": 2, "B.c_pred": 2 }),
      step(5, { "B.dist_maxprob": NaN }),
      step(10, { "B.dist_maxprob": 2e-6, "B.norm_ratio": 2.002, "B.c_pred": 2 }),
      { kind: "event", step: 12, epoch: 0, event: "rescale", run: "B", factor: 0.25 },
      step(20, { "B.dist_maxprob": 0.5 }),
      step(30, { "B.batch_maxprob": 1e-3 }),
    ]),
    "test",
    { capacity: 8 },
  );
  assertEquals(d.runs, ["A", "B"]);
  assertEquals(d.onsets.B.probe, {
    above: { "1e-6": 10, "1e-4": 20, "1e-2": 20 },
    max: 0.5,
    final: 0.5,
  });
  assertEquals(d.onsets.B.batch?.above, { "1e-6": 30, "1e-4": 30, "1e-2": null });
  assertEquals([d.rows, d.firstStep, d.lastStep, d.events.length], [5, 0, 30, 1]);
  const rel = d.series.get(`B.${REL_DIFF}`)!.points(10, 0, 30).map((p) => p.value);
  assertEquals(rel.map((v) => Number(v.toPrecision(3))), [0, 0.001]);
  assertEquals(d.lastValues["B.dist_maxprob"], 0.5);
  assertEquals(d.series.get("B.dist_maxprob")!.nonFinite, 1);
});

Deno.test("a run page: tables, one plot per quantity, no external URL, spec embedded", async () => {
  const path = await Deno.makeTempFile({ suffix: ".csv" });
  try {
    await Deno.writeTextFile(
      path,
      [...syntheticCsv({ rows: 300, rescaleAt: 100, spikeAt: 250 })].join(""),
    );
    const d = await accumulate(await readRows(path), path, { capacity: 920 });
    const html = await runPage(d, null, "test <report>");
    assertEquals(html.split('<figure class="plot"').length - 1, 10);
    assertEquals(html.split('<script type="application/json"').length - 1, 10);
    if (!html.includes("test &#60;report&#62;")) throw new Error("title not escaped");
    if (!html.includes("rescale B ×0.25")) throw new Error("no rescale mark");
    if (!html.includes("lr ×0.1")) throw new Error("no phase mark from the lr column");
    const urls = html.match(/https?:\/\/[^\s"'<>]+/g)?.filter((u) =>
      !u.startsWith("http://www.w3.org/") && !u.startsWith("https://vega.github.io/schema/")
    );
    assertEquals(urls ?? [], []);
    if (/@font-face|@import|<link|<img|src=/.test(html)) throw new Error("loads something");
  } finally {
    await Deno.remove(path);
  }
});
