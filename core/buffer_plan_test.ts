import { type Lifetime, planBuffers } from "./buffer_plan.ts";
import type { Rng } from "./prng.ts";
import { freshRng } from "./test_util.ts";

/** Random passes of random lifetimes, some sharing endpoints. */
function randomPasses(rng: Rng): Lifetime[][] {
  return Array.from({ length: 1 + rng.int(4) }, () =>
    Array.from({ length: rng.int(60) }, () => {
      const start = rng.int(40);
      return { bytes: 16 * (1 + rng.int(100)), start, end: start + rng.int(12) };
    }));
}

Deno.test("planBuffers: on random passes no two tensors alive at once share a slot, every slot holds its tensors", () => {
  const rng = freshRng("planBuffers");
  for (let k = 0; k < 200; k++) {
    const passes = randomPasses(rng);
    const { slotBytes, slotOf } = planBuffers(passes);
    passes.forEach((tensors, p) => {
      tensors.forEach((a, i) => {
        const s = slotOf[p][i];
        if (!(slotBytes[s] >= a.bytes)) throw new Error(`pass ${p} tensor ${i} outgrows slot ${s}`);
        tensors.forEach((b, j) => {
          if (j <= i || slotOf[p][j] !== s) return;
          if (a.start <= b.end && b.start <= a.end) {
            throw new Error(`pass ${p}: tensors ${i} and ${j} overlap in time and share slot ${s}`);
          }
        });
      });
    });
    // Never more than no plan (a buffer per tensor of every pass), nor less than any moment's
    // need. Not bounded by the largest pass's sum: a pass of one 1000-byte tensor and one of
    // 900 and 100 bytes alive together need 1100 bytes in any slots both passes share.
    const sum = passes.flat().reduce((s, x) => s + x.bytes, 0);
    const total = slotBytes.reduce((s, b) => s + b, 0);
    if (total > sum) throw new Error(`planned ${total} bytes, more than the ${sum} of no plan`);
    for (const tensors of passes) {
      for (let t = 0; t < 52; t++) {
        const live = tensors.filter((x) => x.start <= t && t <= x.end);
        const need = live.reduce((s, x) => s + x.bytes, 0);
        if (total < need) throw new Error(`${need} bytes alive at ${t}, planned ${total}`);
      }
    }
  }
});

Deno.test("planBuffers: sequential tensors reuse one slot; overlapping ones do not; passes share slots", () => {
  const chain = [0, 1, 2, 3].map((i) => ({ bytes: 64, start: i, end: i }));
  const one = planBuffers([chain]);
  if (one.slotBytes.join() !== "64") throw new Error(`chain: slots ${one.slotBytes}`);
  const touching = planBuffers([[{ bytes: 16, start: 0, end: 1 }, {
    bytes: 16,
    start: 1,
    end: 2,
  }]]);
  if (touching.slotBytes.length !== 2) throw new Error("tensors alive at one dispatch share");
  const two = planBuffers([chain, [{ bytes: 128, start: 0, end: 5 }]]);
  if (two.slotBytes.join() !== "128") throw new Error(`passes: slots ${two.slotBytes}`);
  let threw = false;
  try {
    planBuffers([[{ bytes: 16, start: 3, end: 2 }]]);
  } catch {
    threw = true;
  }
  if (!threw) throw new Error("a lifetime ending before it starts is accepted");
});
