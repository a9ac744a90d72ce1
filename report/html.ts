/**
 * The self-contained HTML page: inline CSS, inline SVG plots, each plot's Vega-Lite spec as a
 * JSON block (not executed) so it can be opened in other tools, and one small inline script that
 * counts the plots (`<body data-plots>`, `data-plots-drawn`) for the end-to-end test. Nothing is
 * loaded from anywhere at view time.
 *
 * @module
 */

import type { TopLevelSpec } from "vega-lite";

/** A rendered plot and the spec it was rendered from. */
export interface Figure {
  svg: string;
  spec: TopLevelSpec;
}

/** The parts of a page. */
export interface PageContent {
  title: string;
  /** Lines under the title (plain text). */
  subtitle: string[];
  /** HTML blocks before the plots (tables), already escaped. */
  before: string[];
  figures: Figure[];
  /** HTML blocks after the plots. */
  after: string[];
}

/** `text` safe inside HTML text and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** An HTML table of plain-text cells, with a heading and an optional note under it. */
export function table(heading: string, head: string[], rows: string[][], note = ""): string {
  const tr = (cells: string[], tag: string) =>
    `<tr>${cells.map((c) => `<${tag}>${escapeHtml(c)}</${tag}>`).join("")}</tr>`;
  return [
    `<section><h2>${escapeHtml(heading)}</h2>`,
    note ? `<p class="note">${escapeHtml(note)}</p>` : "",
    `<table><thead>${tr(head, "th")}</thead><tbody>`,
    ...rows.map((r) => tr(r, "td")),
    `</tbody></table></section>`,
  ].join("\n");
}

/** Key/value pairs of plain text as a compact grid of `columns` pairs per row. */
export function keyValues(
  heading: string,
  pairs: [string, string][],
  note = "",
  columns = 1,
): string {
  const cells = pairs.map(([k, v]) =>
    `<span class="k">${escapeHtml(k)}</span><span class="v">${escapeHtml(v)}</span>`
  );
  return [
    `<section><h2>${escapeHtml(heading)}</h2>`,
    note ? `<p class="note">${escapeHtml(note)}</p>` : "",
    `<div class="kv" style="grid-template-columns: repeat(${columns}, max-content max-content)">`,
    ...cells,
    `</div></section>`,
  ].join("\n");
}

/** JSON that cannot end a `<script>` block early. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

const CSS = `
body { font-family: sans-serif; margin: 16px 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 15px; margin: 18px 0 6px; }
p.sub { margin: 0; color: #555; font-size: 13px; }
p.note { margin: 2px 0 6px; color: #555; font-size: 12px; }
section { display: inline-block; vertical-align: top; margin-right: 28px; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; font-weight: normal; }
.kv { display: grid; gap: 1px 10px; font-size: 12px; }
.kv .k { color: #555; }
.kv .v { margin-right: 18px; }
.plots { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 10px 16px; margin-top: 14px; }
figure.plot { margin: 0; }
figure.plot svg { max-width: 100%; height: auto; }
footer { margin-top: 18px; color: #666; font-size: 12px; }
`;

// Counts the plots and those with drawn data marks; sets attributes only, logs nothing.
const COUNT_SCRIPT = `(function () {
  var plots = document.querySelectorAll("figure.plot svg");
  var drawn = 0;
  for (var i = 0; i < plots.length; i++) {
    if (plots[i].querySelector("g.mark-line path, g.mark-symbol path")) drawn++;
  }
  document.body.setAttribute("data-plots", String(plots.length));
  document.body.setAttribute("data-plots-drawn", String(drawn));
})();`;

/** The whole page. */
export function page(c: PageContent): string {
  const figures = c.figures.map((f, i) =>
    `<figure class="plot" id="plot-${i + 1}">${f.svg}` +
    `<script type="application/json" id="spec-${i + 1}">${scriptJson(f.spec)}</script></figure>`
  );
  return [
    "<!DOCTYPE html>",
    `<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(c.title)}</title>`,
    `<style>${CSS}</style></head><body>`,
    `<h1>${escapeHtml(c.title)}</h1>`,
    ...c.subtitle.map((s) => `<p class="sub">${escapeHtml(s)}</p>`),
    ...c.before,
    `<div class="plots">`,
    ...figures,
    `</div>`,
    ...c.after,
    `<footer>Each plot's Vega-Lite spec, with its reduced data, is embedded in this file as ` +
    `<code>&lt;script type="application/json" id="spec-N"&gt;</code>: open it in any Vega-Lite ` +
    `tool. Made by wd-explr's <code>deno task report</code>.</footer>`,
    `<script>${COUNT_SCRIPT}</script>`,
    "</body></html>",
    "",
  ].join("\n");
}
