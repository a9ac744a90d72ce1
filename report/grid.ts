/**
 * The `--grid` language of `deno task sweep`: space-separated axes `name=values`, where values
 * are a comma-separated list (`lr=0.05,0.1`), an integer range (`seed=0..4`, both ends
 * included), or both (`seed=0..2,10`). A setting whose value is itself a list separates its
 * values with `;` instead (`hidden=32,32;64,64`). The grid's points are every combination, the
 * first axis varying slowest. Values stay text here: the trainer's config schema reads them.
 *
 * @module
 */

import { ReportError } from "./errors.ts";

/** One axis: a setting (a train flag's name) and its values as given. */
export interface GridAxis {
  name: string;
  values: string[];
}

/** The most points a grid may have (a typo like `seed=0..100000` is caught). */
export const MAX_POINTS = 10_000;

const RANGE = /^(-?\d+)\.\.(-?\d+)$/;

/** Parses `--grid` text into its axes; throws a one-line {@link ReportError}. */
export function parseGrid(text: string): GridAxis[] {
  const items = text.trim().split(/\s+/).filter((s) => s !== "");
  if (items.length === 0) {
    throw new ReportError("--grid: empty: expected name=values, e.g. 'lr=0.05,0.1 seed=0..4'");
  }
  const axes: GridAxis[] = [];
  for (const item of items) {
    const eq = item.indexOf("=");
    const name = item.slice(0, eq).replace(/^--/, ""), list = item.slice(eq + 1);
    if (eq < 0 || name === "" || list === "") {
      throw new ReportError(`--grid: ${JSON.stringify(item)}: expected name=values`);
    }
    if (axes.some((a) => a.name === name)) throw new ReportError(`--grid: ${name} appears twice`);
    const values = list.split(list.includes(";") ? ";" : ",").flatMap((v) =>
      expand(name, v.trim())
    );
    const twice = values.find((v, i) => values.indexOf(v) !== i);
    if (twice !== undefined) throw new ReportError(`--grid: ${name} lists ${twice} twice`);
    axes.push({ name, values });
  }
  const count = axes.reduce((n, a) => n * a.values.length, 1);
  if (count > MAX_POINTS) {
    throw new ReportError(`--grid: ${count} points, more than the ${MAX_POINTS} allowed`);
  }
  return axes;
}

/** One list item: a value, or the integers of a range `a..b`. */
function expand(name: string, value: string): string[] {
  if (value === "") throw new ReportError(`--grid: ${name}: an empty value`);
  if (!value.includes("..")) return [value];
  const m = RANGE.exec(value);
  if (!m) throw new ReportError(`--grid: ${name}=${value}: a range a..b takes integers`);
  const [a, b] = [Number(m[1]), Number(m[2])];
  if (b < a) throw new ReportError(`--grid: ${name}=${value}: the range ends before it starts`);
  if (b - a >= MAX_POINTS) {
    throw new ReportError(`--grid: ${name}=${value}: more than ${MAX_POINTS} values`);
  }
  return Array.from({ length: b - a + 1 }, (_, i) => String(a + i));
}

/** Every combination of the axes' values, the first axis varying slowest. */
export function gridPoints(axes: readonly GridAxis[]): Record<string, string>[] {
  let points: Record<string, string>[] = [{}];
  for (const axis of axes) {
    points = points.flatMap((p) => axis.values.map((v) => ({ ...p, [axis.name]: v })));
  }
  return points;
}
