/** Plot specs rendered by vega: data marks drawn, log axes labelled at powers of ten, offline. */

import { type PlotData, plotSpec } from "./plot.ts";
import { externalReferences, renderSvg, roundCoordinates } from "./render.ts";
import { escapeHtml, page } from "./html.ts";

function assert(cond: boolean, msg: string): void {
  if (!cond) throw new Error(msg);
}

const plot: PlotData = {
  title: "distance",
  notes: ["zeros drawn at 1e-9"],
  yTitle: "d",
  yScale: "log",
  traces: [
    {
      series: "A–B",
      kind: "probe",
      mark: "line",
      points: [{ step: 0, value: 1e-9 }, { step: 9, value: 1e-3 }],
    },
    { series: "A–B", kind: "eval", mark: "point", points: [{ step: 5, value: 1e-5 }] },
  ],
  colors: { "A–B": "#ff7f0e" },
  marks: [{ step: 4, kind: "phase", label: "lr ×0.1" }, {
    step: 6,
    kind: "rescale",
    label: "rescale B ×0.25",
  }],
  thresholds: [1e-6, 1e-4, 1e-2],
  steps: [0, 9],
};

Deno.test("a log plot renders lines, points, thresholds and marks with no external reference", async () => {
  const svg = await renderSvg(plotSpec(plot));
  assert(svg.startsWith("<svg"), "not an SVG");
  assert(
    /class="mark-line[^"]*"/.test(svg) && /class="mark-symbol[^"]*"/.test(svg),
    "data marks missing",
  );
  for (
    const label of ["1e-9", "1e-6", "1e-2", "lr ×0.1", "rescale B ×0.25", "zeros drawn at 1e-9"]
  ) {
    assert(svg.includes(label), `no ${label} in the SVG`);
  }
  assert(svg.includes('font-family="sans-serif"'), "not the generic font");
  assert(externalReferences(svg).length === 0, `external: ${externalReferences(svg)}`);
});

Deno.test("external references are found; coordinates are rounded, text is not", () => {
  assert(
    externalReferences(
      '<svg xmlns="http://www.w3.org/2000/svg"><style>@import url(https://x.org/f.css)</style>',
    )
      .join() === "https://x.org/f.css",
    "missed an external URL",
  );
  assert(
    roundCoordinates('<path d="M1.23456,7.5L2.0001,3"/><text x="1.23456">0.000123</text>') ===
      '<path d="M1.23,7.5L2,3"/><text x="1.23">0.000123</text>',
    roundCoordinates('<path d="M1.23456,7.5L2.0001,3"/><text x="1.23456">0.000123</text>'),
  );
});

Deno.test("the page escapes text and cannot be broken out of by a spec's data", () => {
  const html = page({
    title: "a<b",
    subtitle: [`"x" & 'y'`],
    before: [],
    figures: [{
      svg: "<svg></svg>",
      spec: { data: { values: [] }, mark: "point", description: "</script><script>alert(1)" },
    }],
    after: [],
  });
  assert(html.includes("<title>a&#60;b</title>"), "title not escaped");
  assert(!html.includes("</script><script>alert"), "spec JSON closed the script block");
  assert(escapeHtml(`<&"'>`) === "&#60;&#38;&#34;&#39;&#62;", escapeHtml(`<&"'>`));
});
