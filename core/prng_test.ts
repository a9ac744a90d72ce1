import { createRng, deriveSeed, seeds } from "./prng.ts";

Deno.test("createRng: same seed same stream, different seed different stream", () => {
  const a = createRng(7), b = createRng(7), c = createRng(8);
  const sa = Array.from({ length: 16 }, () => a.nextU32());
  const sb = Array.from({ length: 16 }, () => b.nextU32());
  const sc = Array.from({ length: 16 }, () => c.nextU32());
  if (sa.join() !== sb.join()) throw new Error("same seed gave different streams");
  if (sa.join() === sc.join()) throw new Error("different seeds gave the same stream");
});

Deno.test("createRng: uniform mean and normal moments are plausible", () => {
  const r = createRng(1);
  let s = 0, s1 = 0, s2 = 0;
  const n = 200_000;
  for (let i = 0; i < n; i++) {
    s += r.next();
    const z = r.normal();
    s1 += z;
    s2 += z * z;
  }
  if (Math.abs(s / n - 0.5) > 0.005) throw new Error(`uniform mean ${s / n}`);
  if (Math.abs(s1 / n) > 0.01 || Math.abs(s2 / n - 1) > 0.02) {
    throw new Error(`normal mean ${s1 / n} var ${s2 / n}`);
  }
});

Deno.test("createRng: shuffle is a permutation", () => {
  const a = createRng(3).shuffle(Array.from({ length: 1000 }, (_, i) => i));
  const sorted = [...a].sort((x, y) => x - y);
  if (sorted.some((v, i) => v !== i)) throw new Error("not a permutation");
  if (a.every((v, i) => v === i)) throw new Error("identity shuffle");
});

Deno.test("deriveSeed: distinct streams per name and per seed, reproducible", () => {
  const seen = new Set<number>();
  for (let seed = 0; seed < 100; seed++) {
    for (const name of ["init", "shuffle", "perturb"]) {
      const s = deriveSeed(seed, name);
      if (s !== deriveSeed(seed, name)) throw new Error("not reproducible");
      seen.add(s);
    }
  }
  if (seen.size !== 300) throw new Error(`${300 - seen.size} collisions`);
});

Deno.test("seeds: every named stream is deriveSeed of --seed under its name, in the recorded order", () => {
  const got = seeds({ seed: 42 });
  const names = ["shuffle", "augment", "perturb", "init"];
  if (Object.keys(got).join() !== names.join()) throw new Error(`streams ${Object.keys(got)}`);
  for (const name of names) {
    const v = got[name as keyof typeof got];
    if (v !== deriveSeed(42, name)) throw new Error(`${name}: ${v} !== ${deriveSeed(42, name)}`);
  }
});
