/**
 * The layering of the source tree: the real tree has no upward, sibling or impure import, and
 * each rule of {@link checkImports} fires on a synthetic tree built to break it.
 */

import { checkImports, parseImports, readSourceTree, type SourceFile } from "./layers.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/**
 * Violations in the tree today, awaiting a fix elsewhere, as `file -> target` pairs. Each must
 * still occur (so a fixed one is removed here) and nothing else may.
 * - shaders/conv2d.ts takes `Conv2dShape` and `convOutputShape` from reference/conv.ts: the
 *   shape type and output-size arithmetic belong in core/ (both siblings would import it).
 */
const KNOWN: readonly string[] = [];

/** One synthetic file importing `specs`, each as a plain one-line import. */
function file(path: string, ...specs: string[]): SourceFile {
  return { path, text: specs.map((s, i) => `import { x${i} } from "${s}";\n`).join("") };
}

/** The violations for a single synthetic file. */
function violations(path: string, ...specs: string[]): string[] {
  return checkImports([file(path, ...specs)]);
}

function assertReported(found: string[], ...fragments: string[]): void {
  if (found.length !== 1) {
    throw new Error(`expected one violation, got ${found.length}:\n${found.join("\n")}`);
  }
  for (const f of fragments) {
    if (!found[0].includes(f)) throw new Error(`violation ${JSON.stringify(found[0])} lacks ${f}`);
  }
}

function assertClean(found: string[]): void {
  if (found.length !== 0) throw new Error(`unexpected violations:\n${found.join("\n")}`);
}

Deno.test("the real tree imports only downward", async () => {
  const files = await readSourceTree(ROOT);
  for (const must of ["core/graph.ts", "shaders/gpu.ts", "stages/data/loader.ts", "main.ts"]) {
    if (!files.some((f) => f.path === must)) throw new Error(`the walk missed ${must}`);
  }
  if (files.some((f) => /^(data|docs)\//.test(f.path))) throw new Error("walked data/ or docs/");
  const imports = files.reduce((n, f) => n + parseImports(f.text).length, 0);
  if (imports < files.length) throw new Error(`only ${imports} imports in ${files.length} files`);
  const found = checkImports(files);
  const known = (v: string, k: string) => {
    const [from, to] = k.split(" -> ");
    return v.startsWith(`${from}:`) && v.includes(` -> ${to}:`);
  };
  assertClean(found.filter((v) => !KNOWN.some((k) => known(v, k))));
  for (const k of KNOWN) {
    if (!found.some((v) => known(v, k))) throw new Error(`${k} is fixed: drop it from KNOWN`);
  }
});

Deno.test("a kernel importing a higher rank is reported", () => {
  assertReported(violations("shaders/x.ts", "../stages/trainer.ts"), "shaders/x.ts:1", "upward");
  assertReported(violations("shaders/x.ts", "../pipeline/config.ts"), "../pipeline/config.ts");
  assertReported(violations("stages/data/loader.ts", "../../pipeline/config.ts"), "upward");
  assertReported(violations("pipeline/x.ts", "../main.ts"), "upward");
  assertReported(violations("reference/x_test.ts", "../stages/step.ts"), "upward");
});

Deno.test("shaders/ and reference/ are siblings: only their tests cross", () => {
  assertReported(violations("reference/trainer.ts", "../shaders/gpu.ts"), "sibling");
  assertReported(violations("shaders/x.ts", "../reference/ops.ts"), "sibling");
  assertReported(violations("bench/x.ts", "../tests/layers.ts"), "sibling");
  assertClean(violations("shaders/x_test.ts", "../reference/ops.ts"));
  assertClean(violations("shaders/test_gpu.ts", "../reference/ops.ts"));
  assertClean(violations("reference/x_test.ts", "../shaders/gpu.ts", "../core/prng.ts"));
  assertClean(violations("tests/fixtures/f.ts", "../../main.ts", "../../shaders/gpu.ts"));
});

Deno.test("core/ is pure: relative imports of core/ only, no Deno, no GPU", () => {
  assertReported(violations("core/x.ts", "zod"), "core/x.ts:1", "zod", "relative imports only");
  assertReported(violations("core/x.ts", "node:path"), "relative imports only");
  assertReported(violations("core/x.ts", "../shaders/gpu.ts"), "upward");
  assertReported(violations("core/x_test.ts", "../stages/y.ts"), "core/x_test.ts", "upward");
  assertClean(violations("core/x.ts", "./prng.ts", "./graph.ts"));
  const deno = { path: "core/x.ts", text: "// Deno. in a comment\nconst t = Deno.readTextFile;\n" };
  assertReported(checkImports([deno]), "core/x.ts:2", "Deno.");
  const gpu = { path: "reference/x.ts", text: "const a = navigator.gpu;\n" };
  assertReported(checkImports([gpu]), "reference/x.ts:1", "navigator.gpu");
  const buf = { path: "core/x.ts", text: "let b: GPUBuffer | null = null;\n" };
  assertReported(checkImports([buf]), "core/x.ts:1", "GPU");
  assertClean(checkImports([{ path: "core/x_test.ts", text: "Deno.test('t', () => {});\n" }]));
  assertClean(checkImports([{ path: "shaders/x.ts", text: "const a = navigator.gpu;\n" }]));
});

Deno.test("bare specifiers are fine outside core/, relative paths must stay in the tree", () => {
  assertClean(violations("pipeline/config.ts", "zod", "node:util", "npm:csv-parse@7.0.3/sync"));
  assertClean(violations("stages/data/loader.ts", "../../core/prng.ts", "./types.ts"));
  assertClean(violations("stages/data/loader.ts", "../trainer.ts", "../../shaders/gpu.ts"));
  assertClean(violations("main.ts", "./pipeline/train.ts", "./core/prng.ts"));
  assertReported(violations("stages/x.ts", "../../elsewhere.ts"), "leaves the repository");
  assertReported(violations("stages/x.ts", "../data/file.ts"), "no layer");
  assertReported(violations("misc/x.ts"), "not in any layer");
});

Deno.test("every import form is parsed, multi-line ones included", () => {
  const text = [
    `/** See import x from "../pipeline/doc.ts" — prose, not an import. */`,
    `// import { y } from "../pipeline/commented.ts";`,
    `import {`,
    `  a,`,
    `  type B,`,
    `} from "../stages/multi.ts";`,
    `import type { C } from '../stages/single.ts';`,
    `import D, * as E from "../stages/star.ts";`,
    `import "../stages/side.ts";`,
    `export * from "../stages/reexport.ts";`,
    `export {`,
    `  f,`,
    `} from "../stages/multi_export.ts";`,
    `export type { G } from "./sibling.ts";`,
    `const h = await import("../stages/dynamic.ts");`,
    `type I = typeof import("../stages/type.ts");`,
  ].join("\n");
  const got = parseImports(text).map((r) => `${r.line} ${r.specifier}`);
  const want = [
    "3 ../stages/multi.ts",
    "7 ../stages/single.ts",
    "8 ../stages/star.ts",
    "9 ../stages/side.ts",
    "10 ../stages/reexport.ts",
    "11 ../stages/multi_export.ts",
    "14 ./sibling.ts",
    "15 ../stages/dynamic.ts",
    "16 ../stages/type.ts",
  ];
  if (got.join("\n") !== want.join("\n")) {
    throw new Error(`parsed:\n${got.join("\n")}\nexpected:\n${want.join("\n")}`);
  }
  const found = checkImports([{ path: "shaders/k.ts", text }]);
  if (found.length !== 8 || !found.every((v) => v.includes("upward"))) {
    throw new Error(`expected 8 upward imports:\n${found.join("\n")}`);
  }
  if (!found[0].startsWith(`shaders/k.ts:3: import "../stages/multi.ts"`)) {
    throw new Error(`first violation ${found[0]}`);
  }
});
