/**
 * A sweep's `manifest.json`: the grid it was expanded from, its axes, the base flags, and every
 * point with its index, config file, settings and outputs. `deno task sweep` writes it; `deno task
 * report DIR` reads it to lay out the comparison.
 *
 * @module
 */

import { z } from "zod";
import { ReportError } from "./errors.ts";
import { parseWith } from "./validate.ts";

const manifestSchema = z.strictObject({
  version: z.string(),
  /** The --grid text as given. */
  grid: z.string(),
  axes: z.array(z.strictObject({ name: z.string(), values: z.array(z.unknown()).min(1) })).min(1),
  /** The other train flags, as given on the sweep's command line. */
  base: z.array(z.string()),
  count: z.number().int().min(1),
  points: z.array(z.strictObject({
    index: z.number().int().min(0),
    /** The point's config file, relative to the manifest's folder. */
    config: z.string(),
    /** The point's value of each axis (validated, as the config file holds it). */
    settings: z.record(z.string(), z.unknown()),
    /**
     * Where the point writes: its rows (in the manifest's folder), its summary and checkpoint
     * folder as its config names them. Manifests of older sweeps lack it.
     */
    outputs: z.strictObject({
      rows: z.string(),
      summary: z.string(),
      checkpoint_dir: z.string().nullable(),
    }).optional(),
  })).min(1),
});

/** A sweep's manifest. */
export type Manifest = z.infer<typeof manifestSchema>;

/** The name of the manifest file in a sweep folder. */
export const MANIFEST = "manifest.json";

/** Whether a parsed JSON value looks like a manifest (rather than a summary). */
export function looksLikeManifest(value: unknown): boolean {
  return typeof value === "object" && value !== null && "points" in value && "axes" in value;
}

/** Checks a parsed manifest; throws a {@link ReportError} naming `path` and the field. */
export function parseManifest(value: unknown, path: string): Manifest {
  const m = parseWith(manifestSchema, value, `${path}: not a sweep manifest`);
  if (m.points.length !== m.count) {
    throw new ReportError(
      `${path}: not a sweep manifest: count ${m.count} but ${m.points.length} points`,
    );
  }
  return m;
}
