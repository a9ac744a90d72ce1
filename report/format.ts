/**
 * Numbers as the report's tables show them.
 *
 * @module
 */

/** A number in 4 significant digits, or in exponent form when very small or large; "–" for none. */
export function num(v: number | null | undefined): string {
  if (v === null || v === undefined) return "–";
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

/** A fraction as a percentage with one decimal; "–" for none. */
export function pct(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? "–" : `${(100 * v).toFixed(1)}%`;
}

/** An onset step; "never" for null, "–" when not measured. */
export function onset(v: number | null | undefined): string {
  return v === undefined ? "–" : v === null ? "never" : String(v);
}

/** A setting's value as text (lists comma-separated, as on the command line). */
export function settingText(v: unknown): string {
  if (Array.isArray(v)) return v.length === 0 ? "none" : v.join(",");
  return v === undefined ? "–" : String(v);
}
