/**
 * `--model path/to/net.ts`: a model file is a TypeScript (or JavaScript) module exporting
 * `model(x, data)`, a {@link ModelFunction} written with the graph API (docs/models.md). It is
 * loaded by Deno's dynamic import, identified by the SHA-256 of its bytes (a checkpoint records
 * it, so a resume with a changed file is refused), and every way it can fail (unreadable, not
 * parsable, no `model` export, a throw, an invalid graph) is one line naming the file, and the
 * line of the file where that is known.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { GraphError, type ModelLayout } from "../core/graph.ts";
import { buildModel, type ModelData, type ModelFunction } from "../core/models.ts";
import { ConfigError } from "./config.ts";

/** A loaded model file. */
export interface ModelFile {
  /** As given on the command line. */
  path: string;
  /** Hex SHA-256 of the file's bytes. */
  sha256: string;
  model: ModelFunction;
}

/** First line of an error's message, without Deno's trailing stack lines. */
function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "unknown error";
}

/** Reads, hashes and imports the model file at `path`. */
export async function loadModelFile(path: string): Promise<ModelFile> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new ConfigError(`--model: cannot read ${path}: ${firstLine(e)}`);
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  let module: Record<string, unknown>;
  try {
    // The hash in the URL's query makes a changed file a new module within one process.
    module = await import(`${pathToFileURL(resolve(path)).href}?sha256=${sha256}`);
  } catch (e) {
    throw new ConfigError(`--model: ${whereIn(path, e)}: cannot be loaded: ${firstLine(e)}`);
  }
  const model = module.model;
  if (typeof model !== "function") {
    const exports = Object.keys(module);
    throw new ConfigError(
      `--model: ${path} exports no function named model (${
        exports.length ? `it exports ${exports.join(", ")}` : "it exports nothing"
      }); see docs/models.md`,
    );
  }
  return { path, sha256, model: model as ModelFunction };
}

/**
 * `path:line` of the first place in the file `path` that `e` points at (a parse error's
 * position in its message, or the innermost stack frame there), else `path`.
 */
function whereIn(path: string, e: unknown): string {
  const url = pathToFileURL(resolve(path)).href;
  const text = e instanceof Error ? `${e.message}\n${e.stack ?? ""}` : "";
  for (const frame of text.split("\n")) {
    const at = frame.indexOf(url);
    if (at < 0) continue;
    const line = /^(?:\?[^:]*)?:(\d+):\d+/.exec(frame.slice(at + url.length));
    if (line) return `${path}:${line[1]}`;
  }
  return path;
}

/** Builds the layout of a loaded model file for `data`; failures name the file (and line). */
export function modelFileLayout(file: ModelFile, data: ModelData): ModelLayout {
  try {
    return buildModel({ model: "function", fn: file.model, description: file.path }, data);
  } catch (e) {
    const where = whereIn(file.path, e);
    if (e instanceof GraphError) throw new ConfigError(`--model: ${where}: ${e.message}`);
    throw new ConfigError(`--model: ${where}: the model threw: ${firstLine(e)}`);
  }
}
