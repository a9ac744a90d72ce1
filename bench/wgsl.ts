/**
 * `deno task wgsl [substring]`: prints the WGSL of every catalogued kernel variant whose name
 * contains `substring` (shaders/catalog.ts), each after a `// ==== name` line, on stdout; with
 * no argument, lists the names.
 *
 * @module
 */

import { WGSL_CATALOG } from "../shaders/catalog.ts";

if (import.meta.main) {
  const [filter] = Deno.args;
  const names = Object.keys(WGSL_CATALOG);
  if (filter === undefined) {
    console.log(names.join("\n"));
  } else {
    const hits = names.filter((n) => n.includes(filter));
    if (hits.length === 0) {
      console.error(`no catalogued kernel matches "${filter}"; the names:\n${names.join("\n")}`);
      Deno.exit(1);
    }
    for (const name of hits) console.log(`// ==== ${name}\n${WGSL_CATALOG[name]()}`);
  }
}
