import { trainStepFlops } from "../core/flops.ts";
import type { ModelLayout } from "../core/graph.ts";
import { mlpLayout, preresnetLayout } from "../core/test_fixtures.ts";
import { digits, inspectionText, invarianceLine } from "./inspect_table.ts";

/** The rows of the graph's nodes. */
function nodeLines(lines: string[]): string[] {
  return lines.filter((l) => /^\s*\d+ {2}\S/.test(l));
}

/** Throws unless `text` names every node and tensor and its totals are the layout's. */
function assertComplete(layout: ModelLayout, rows: number, text: string) {
  const lines = text.split("\n");
  for (const node of layout.graph.nodes) {
    const row = new RegExp(`^\\s*${node.id}  ${node.name.replaceAll(".", "\\.")}\\s`);
    if (!lines.some((l) => row.test(l))) throw new Error(`no row for node ${node.name}`);
  }
  for (const t of layout.tensors) {
    const row = lines.find((l) => l.startsWith(`${t.name} `));
    if (!row || !new RegExp(`\\s${t.group}\\s`).test(row)) {
      throw new Error(`no row for tensor ${t.name} in group ${t.group}`);
    }
  }
  const total = lines.find((l) => /^\s+total\s/.test(l));
  const numbers = total?.trim().split(/\s+/).slice(1).map((n) => Number(n.replaceAll(",", "")));
  const expected = [layout.size, trainStepFlops(layout, rows)];
  if (numbers?.join() !== expected.join()) throw new Error(`total line "${total}"`);
  // The node rows add up to the totals.
  const column = (k: number) =>
    nodeLines(lines).reduce(
      (s, l) => s + Number(l.trim().split(/\s+/).at(k)!.replaceAll(",", "")),
      0,
    );
  if (column(-2) !== layout.size || column(-1) !== expected[1]) throw new Error("column sums");
  if (!lines[0].includes(`${digits(layout.size)} parameters`)) throw new Error(lines[0]);
  // Aligned: the header's columns start where the rows' do.
  const header = lines.find((l) => l.startsWith("id  name"))!;
  const at = header.indexOf("op");
  if (nodeLines(lines).some((l) => l[at - 1] !== " " || l[at] === " ")) {
    throw new Error("misaligned");
  }
}

Deno.test("inspectionText: default mlp names every node and tensor, totals match", () => {
  const layout = mlpLayout([784, 256, 256, 10]);
  const text = inspectionText(layout, { rows: 128 });
  assertComplete(layout, 128, text);
  for (const fragment of ["linear 256", "linear 10 +bias", "scale absorbed by bn0", "S 266,240"]) {
    if (!text.includes(fragment)) throw new Error(`no "${fragment}" in\n${text}`);
  }
  if (text.includes("invariance check")) throw new Error("no check was given");
});

Deno.test("inspectionText: small preresnet, convs with size and stride, the check's line", () => {
  const layout = preresnetLayout(8, 4, 8, 3, 10);
  const text = inspectionText(layout, { rows: 32, invariance: { error: 1e-15, scale: 2.5 } });
  assertComplete(layout, 32, text);
  for (const fragment of ["conv 8 3x3/2", "conv 8 1x1/2", "layer1.0.conv2, stem", "2x2x16"]) {
    if (!text.includes(fragment)) throw new Error(`no "${fragment}" in\n${text}`);
  }
  const check = "invariance check (float64, eps 0): logits with S×2 differ by at most 1.00e-15 " +
    "(tolerance 2.50e-9): passed\n";
  if (!text.endsWith(check)) throw new Error(`check line in\n${text}`);
});

Deno.test("invarianceLine: fails past the reference check's tolerance", () => {
  if (
    !invarianceLine({ error: 0.2, scale: 3 }).endsWith(
      "differ by at most 0.2 (tolerance 3.00e-9): failed",
    )
  ) {
    throw new Error(invarianceLine({ error: 0.2, scale: 3 }));
  }
  if (!invarianceLine({ error: 0, scale: 0.5 }).endsWith("passed")) {
    throw new Error("error 0 fails");
  }
  if (!invarianceLine({ error: 0, scale: 1, passed: false }).endsWith("failed")) {
    throw new Error("an explicit verdict is kept");
  }
});
