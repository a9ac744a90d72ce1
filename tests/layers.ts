/**
 * The import-direction rule of the source tree, as a pure check over `{path, text}` pairs.
 *
 * The top-level folders form layers and imports only run downward:
 *
 * | rank | folders                                   |
 * | ---- | ----------------------------------------- |
 * | 0    | `core/` (pure: no GPU, no I/O)            |
 * | 1    | `shaders/`, `reference/`, `models/` (siblings) |
 * | 2    | `stages/`                                 |
 * | 3    | `pipeline/`                               |
 * | 4    | `main.ts`, `bench/`, `tests/`, `report/`  |
 *
 * A non-test file may import its own top-level folder (any depth) or a strictly lower rank.
 * Test files (`*_test.ts` and the test helpers in {@link TEST_HELPERS}) may also import a
 * same-rank sibling (shader tests compare against `reference/`), never a higher rank. Bare
 * specifiers (`npm:`, `node:`, import-map names) are fine everywhere but `core/`, which holds
 * relative imports only; `core/` non-test files use no `Deno.` API, and `core/` and `reference/`
 * non-test files touch no GPU.
 *
 * @module
 */

/** A source file: its path relative to the repository root ("/"-separated) and its text. */
export interface SourceFile {
  path: string;
  text: string;
}

/** One import specifier found in a file, with its 1-based line. */
export interface ImportRef {
  specifier: string;
  line: number;
}

/** The rank of each layer: a top-level folder, or a file at the root. */
export const RANKS: Readonly<Record<string, number>> = {
  "core": 0,
  "shaders": 1,
  "reference": 1,
  "models": 1,
  "stages": 2,
  "pipeline": 3,
  "main.ts": 4,
  "bench": 4,
  "tests": 4,
  "report": 4,
};

/** Files that are not `*_test.ts` but belong to the tests. */
export const TEST_HELPERS: readonly string[] = [
  "core/test_util.ts",
  "core/test_fixtures.ts",
  "shaders/test_gpu.ts",
  "stages/data/test_fixtures.ts",
];

/** Whether `path` is a test file: `*_test.ts`, a listed helper, or under `tests/fixtures/`. */
export function isTestFile(path: string): boolean {
  return path.endsWith("_test.ts") || TEST_HELPERS.includes(path) ||
    path.startsWith("tests/fixtures/");
}

/** The layer of a repository path: its top-level folder, or the file itself at the root. */
export function layerOf(path: string): string {
  const slash = path.indexOf("/");
  return slash < 0 ? path : path.slice(0, slash);
}

// `import x, { a } from "…"`, `import type * as n from "…"`, `export { a } from "…"`,
// `export * from "…"`, over several lines too; anchored at a line start so that prose in
// comments does not count.
const FROM =
  /^[ \t]*(?:import|export)\b\s*(?:type\s+)?(?:[\w$]+\s*,?\s*)?(?:\*\s*(?:as\s+[\w$]+\s*)?|\{[^}]*\}\s*)?from\s*(["'])([^"'\n]+)\1/gm;
// `import "…";` for its side effects.
const BARE_IMPORT = /^[ \t]*import\s*(["'])([^"'\n]+)\1/gm;
// `import("…")`, also as a type (`typeof import("…")`).
const DYNAMIC = /(?<![\w$.])import\s*\(\s*(["'`])([^"'`\n]+)\1\s*\)/g;

/** The import specifiers of `text`: static, re-export, side-effect and dynamic. */
export function parseImports(text: string): ImportRef[] {
  const found: { index: number; specifier: string }[] = [];
  for (const re of [FROM, BARE_IMPORT, DYNAMIC]) {
    for (const m of text.matchAll(re)) found.push({ index: m.index!, specifier: m[2] });
  }
  found.sort((a, b) => a.index - b.index);
  return found.map(({ index, specifier }) => ({
    specifier,
    line: lineAt(text, index + (text.slice(index).match(/^\s*/)?.[0].length ?? 0)),
  }));
}

function lineAt(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** `spec` resolved against the folder of `from`; null when it leaves the repository. */
export function resolveRelative(from: string, spec: string): string | null {
  const parts = from.split("/").slice(0, -1);
  for (const seg of spec.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (parts.length === 0) return null;
      parts.pop();
    } else parts.push(seg);
  }
  return parts.join("/");
}

/** `text` without `/* … *\/` and `// …` comments (a line comment must follow a space or start). */
function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/(^|\s)\/\/.*$/gm, "$1");
}

const DENO_API = /\bDeno\s*\./;
const GPU_API =
  /\bnavigator\s*\.\s*gpu\b|\bGPU(?:Buffer|Device|Adapter|Queue|MapMode|ShaderStage|CommandEncoder|ComputePipeline|BindGroup)\w*/;

/**
 * Every violation of the layering rules in `files`, one message per bad import (or per banned
 * API use), each naming the file, line, specifier and rule. Paths are repository-relative.
 */
export function checkImports(files: readonly SourceFile[]): string[] {
  const out: string[] = [];
  for (const { path, text } of files) {
    const layer = layerOf(path), rank = RANKS[layer];
    const test = isTestFile(path);
    if (rank === undefined) {
      out.push(`${path}: not in any layer (top-level ${layer} is not one of the ranked folders)`);
      continue;
    }
    for (const { specifier, line } of parseImports(text)) {
      const at = `${path}:${line}: import "${specifier}"`;
      if (!specifier.startsWith("./") && !specifier.startsWith("../")) {
        if (specifier.startsWith("/") || specifier.startsWith("file:")) {
          out.push(`${at}: absolute path (rule: imports inside the repository are relative)`);
        } else if (layer === "core") {
          out.push(`${at}: bare/remote specifier in core/ (rule: core/ has relative imports only)`);
        }
        continue;
      }
      const target = resolveRelative(path, specifier);
      if (target === null) {
        out.push(`${at}: leaves the repository (rule: imports stay inside the tree)`);
        continue;
      }
      const toLayer = layerOf(target), toRank = RANKS[toLayer];
      if (toLayer === layer) continue;
      const kind = test ? "test file" : "non-test file";
      if (toRank === undefined) {
        out.push(
          `${at} -> ${target}: target is in no layer (rule: imports stay in ranked folders)`,
        );
      } else if (toRank > rank) {
        out.push(
          `${at} -> ${target}: upward import, ${layer} (rank ${rank}) -> ${toLayer} (rank ${toRank}) (rule: imports run downward only)`,
        );
      } else if (toRank === rank && !test) {
        out.push(
          `${at} -> ${target}: sibling import, ${layer} -> ${toLayer} (both rank ${rank}) (rule: only test files may import a same-rank sibling; this is a ${kind})`,
        );
      }
    }
    if (test) continue;
    const code = layer === "core" || layer === "reference" ? stripComments(text) : "";
    if (layer === "core" && DENO_API.test(code)) {
      out.push(
        `${path}:${
          lineOf(code, DENO_API)
        }: uses Deno. (rule: core/ is pure, no Deno file/network APIs)`,
      );
    }
    if ((layer === "core" || layer === "reference") && GPU_API.test(code)) {
      out.push(
        `${path}:${
          lineOf(code, GPU_API)
        }: uses the GPU (rule: ${layer}/ non-test files do not touch navigator.gpu or GPU objects)`,
      );
    }
  }
  return out;
}

function lineOf(text: string, re: RegExp): number {
  const m = re.exec(text);
  return m ? lineAt(text, m.index) : 0;
}

/** The repository's `.ts` files under `root`, skipping `.git`, `data/`, `docs/` and dot-folders. */
export async function readSourceTree(
  root: string,
  skip: readonly string[] = [".git", "data", "docs", "node_modules"],
): Promise<SourceFile[]> {
  const files: SourceFile[] = [];
  async function walk(dir: string, rel: string): Promise<void> {
    for await (const e of Deno.readDir(dir)) {
      const path = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory) {
        if (e.name.startsWith(".") || (rel === "" && skip.includes(e.name))) continue;
        await walk(`${dir}/${e.name}`, path);
      } else if (e.isFile && e.name.endsWith(".ts")) {
        files.push({ path, text: await Deno.readTextFile(`${dir}/${e.name}`) });
      }
    }
  }
  await walk(root, "");
  return files.sort((a, b) => a.path.localeCompare(b.path));
}
