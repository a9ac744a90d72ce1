import { rescaleFactor } from "./step.ts";

Deno.test("rescaleFactor: powers of two landing in (T/4, T/2], 1 below the threshold", () => {
  for (const t of [0.5, 1, 14, 65536]) {
    if (rescaleFactor(t, t) !== 1 || rescaleFactor(t * 0.9, t) !== 1) {
      throw new Error(`rescaled at or below ${t}`);
    }
    for (const n of [t * 1.0001, t * 1.9, t * 2, t * 3, t * 1e6]) {
      const s = rescaleFactor(n, t), after = n * s;
      if (Math.log2(s) !== Math.round(Math.log2(s))) {
        throw new Error(`factor ${s} is not a power of two`);
      }
      if (!(after > t / 4 && after <= t / 2)) {
        throw new Error(`norm ${n} rescaled to ${after}, threshold ${t}`);
      }
    }
  }
});
