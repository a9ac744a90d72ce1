/**
 * The trainer's `--summary FILE` JSON (pipeline/summary.ts), read leniently: only the fields
 * the report shows or checks are checked (older summaries lack `model`, `config`, `config_hash`
 * and `rows`, newer ones add the batch onsets), and anything else is kept as it is.
 *
 * @module
 */

import { z } from "zod";
import { cannotRead, notUtf8, ReportError } from "./errors.ts";
import type { Onsets } from "../core/onsets.ts";
import { parseWith } from "./validate.ts";

const onsets = z.record(z.string(), z.number().int().nullable());
const pairSchema = z.looseObject({
  // JSON has no NaN: a distance that was never finite is written null.
  max_dist_maxprob: z.number().nullable(),
  final_dist_maxprob: z.number().nullable().optional(),
  first_step_above: onsets,
  max_batch_maxprob: z.number().nullable().optional(),
  final_batch_maxprob: z.number().nullable().optional(),
  batch_first_step_above: onsets.optional(),
});
const summarySchema = z.looseObject({
  adapter: z.string().optional(),
  model: z.looseObject({
    description: z.string(),
    parameters: z.number(),
    s: z.number(),
    o: z.number(),
  }).optional(),
  steps: z.number().int().min(0),
  seconds: z.number().optional(),
  steps_per_second: z.number().nullable().optional(),
  runs: z.array(z.string()).optional(),
  pairs: z.record(z.string(), pairSchema),
  final: z.record(
    z.string(),
    z.looseObject({
      train_loss: z.number().nullable(),
      probe_acc: z.number().nullable().optional(),
      heldout_acc: z.number().nullable(),
    }),
  ),
  rescales: z.number().optional(),
  output_closed: z.boolean().optional(),
  stopped: z.string().nullable().optional(),
  version: z.string().optional(),
  config: z.record(z.string(), z.unknown()).optional(),
  /** configHash(config) of pipeline/config.ts: the settings that decide the trajectory. */
  config_hash: z.string().regex(/^[0-9a-f]{16}$/, "expected 16 hex digits").optional(),
  /** What the trainer wrote to stdout: rows (header excluded), step range, SHA-256 of the bytes. */
  rows: z.looseObject({
    format: z.enum(["csv", "jsonl"]),
    count: z.number().int().min(0),
    first_step: z.number().int().min(0).nullable(),
    last_step: z.number().int().min(0).nullable(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, "expected 64 hex digits"),
  }).optional(),
});

/** The parts of a training summary the report uses. */
export type Summary = z.infer<typeof summarySchema>;
/** One pair's entry of a summary. */
export type SummaryPair = z.infer<typeof pairSchema>;

/** Parses a summary's JSON value; throws a {@link ReportError} naming `path` and the field. */
export function parseSummary(value: unknown, path: string): Summary {
  return parseWith(summarySchema, value, `${path}: not a training summary`);
}

/**
 * Reads a JSON file (a summary, a manifest, a sweep point's config); throws a one-line
 * {@link ReportError} when it is missing, not UTF-8 text or not JSON.
 */
export async function readJsonFile(path: string): Promise<unknown> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw cannotRead(path, e);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw notUtf8(path);
  }
  if (text.trim() === "") throw new ReportError(`${path}: empty file`);
  try {
    return JSON.parse(text);
  } catch (e) {
    const message = (e as Error).message.replace(/\s+/g, " ");
    throw new ReportError(`${path}: not valid JSON: ${message.slice(0, 160)}`);
  }
}

/** Reads and checks a summary file. */
export async function readSummary(path: string): Promise<Summary> {
  return parseSummary(await readJsonFile(path), path);
}

/** A summary pair's onsets of the probe distance or of the training-batch distance (null: none). */
export function summaryOnsets(sp: SummaryPair, on: "probe" | "batch"): Onsets | null {
  if (on === "probe") {
    return {
      above: sp.first_step_above,
      max: sp.max_dist_maxprob,
      final: sp.final_dist_maxprob ?? null,
    };
  }
  if (!sp.batch_first_step_above) return null;
  return {
    above: sp.batch_first_step_above,
    max: sp.max_batch_maxprob ?? null,
    final: sp.final_batch_maxprob ?? null,
  };
}
