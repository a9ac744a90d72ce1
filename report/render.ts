/**
 * Vega-Lite specs to SVG on the server side: compiled to Vega by npm `vega-lite`, rendered by
 * npm `vega` with no renderer attached (`renderer: "none"`, `toSVG()`), so no plotting code of
 * our own draws an axis or a tick.
 *
 * @module
 */

import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { ReportError } from "./errors.ts";

/** The namespaces an SVG names; any other URL in it would be fetched by a browser. */
const NAMESPACES = ["http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"];

/** URLs in `svg` other than the SVG and XLink namespaces (fonts, images, stylesheets). */
export function externalReferences(svg: string): string[] {
  const urls = svg.match(/(?:https?:|ftp:|\/\/)[^\s"')<>]+/g) ?? [];
  return urls.filter((u) => !NAMESPACES.includes(u));
}

/**
 * `svg` with the coordinates in its geometry attributes rounded to 2 decimals: Vega writes up
 * to 17 digits, and a hundredth of a pixel is invisible. Text is left alone.
 */
export function roundCoordinates(svg: string): string {
  return svg.replace(/ (d|transform|x|y|x2|y2)="([^"]*)"/g, (_, name: string, value: string) => {
    const short = value.replace(
      /-?\d+\.\d{3,}(?:e-?\d+)?/g,
      (n) => String(Number(Number(n).toFixed(2))),
    );
    return ` ${name}="${short}"`;
  });
}

/**
 * The SVG of a Vega-Lite spec. Throws when the SVG would load anything at view time: the page
 * must work offline.
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    const svg = roundCoordinates(await view.toSVG());
    const external = externalReferences(svg);
    if (external.length > 0) {
      throw new ReportError(`a plot's SVG refers to ${external[0]}: the page would not be offline`);
    }
    return svg;
  } finally {
    view.finalize();
  }
}
