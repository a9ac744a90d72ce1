/** The tiling search on scripted measurements and a scripted clock; the budget split. */

import { assertThrows } from "./test_util.ts";
import { createRng } from "./prng.ts";
import {
  type SearchOptions,
  type SearchResult,
  searchTilings,
  splitBudget,
  type Trial,
  type TuneSpace,
} from "./tune_search.ts";

function assertSame(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}:\n  got      ${a}\n  expected ${e}`);
}

function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

/** Variants 0..size-1 on a line, neighbours t-1 then t+1. */
function line(start: number, size = 10): TuneSpace<number> {
  return {
    start,
    neighbours: (t) => [t - 1, t + 1].filter((u) => u >= 0 && u < size),
    key: (t) => `v${t}`,
  };
}

/** What a scripted variant measures: a time or a rejection, for the quick and the full trial. */
type Script = number | string | { quick: number | string; full: number | string };

/**
 * Measurements from `script` (by key; a variant not in it measures `otherwise` ms), a clock that
 * advances `msPerCall` per measurement, and the log of every measurement as `key×reps`.
 */
function scripted<T>(
  space: TuneSpace<T>,
  script: Record<string, Script>,
  over: Partial<SearchOptions<T>> = {},
  otherwise = 100,
  msPerCall = 1,
): { opts: SearchOptions<T>; calls: string[] } {
  const calls: string[] = [];
  let clock = 1000;
  const trial = (
    v: number | string,
  ): Trial => (typeof v === "string" ? { rejected: v } : { ms: v });
  const opts: SearchOptions<T> = {
    measure: (t, reps) => {
      const key = space.key(t);
      calls.push(`${key}×${reps}`);
      clock += msPerCall;
      const s = script[key] ?? otherwise;
      const v = typeof s === "object" ? (reps === 1 ? s.quick : s.full) : s;
      return Promise.resolve(trial(v));
    },
    now: () => clock,
    budgetMs: Infinity,
    ...over,
  };
  return { opts, calls };
}

/** The trials as `key:outcome[:ms|:why]`, for compact comparisons. */
function outline<T>(r: SearchResult<T>): string[] {
  return r.trials.map((t) =>
    [t.key, t.outcome, ...(t.ms !== undefined ? [t.ms] : [t.why])].join(":")
  );
}

/** Awaits `run` and checks it throws an Error whose message contains `fragment`. */
async function assertRejects(run: () => Promise<unknown>, fragment: string): Promise<void> {
  try {
    await run();
  } catch (e) {
    assert(
      (e as Error).message.includes(fragment),
      `"${(e as Error).message}" lacks "${fragment}"`,
    );
    return;
  }
  throw new Error(`expected an error with "${fragment}"`);
}

Deno.test("searchTilings: the default is measured first with full reps and kept when unbeaten", async () => {
  const space = line(5);
  const { opts, calls } = scripted(space, { v5: 10, v4: 12, v6: 20 });
  const r = await searchTilings(space, opts);
  assertSame(calls, ["v5×5", "v4×1", "v4×5", "v6×1"], "measurements");
  assertSame(outline(r), ["v5:measured:10", "v4:measured:12", "v6:pruned:20"], "trials");
  assert(r.best === 5 && r.bestMs === 10 && r.defaultMs === 10, `best ${r.best} ${r.bestMs}`);
  assert(r.stoppedBy === "converged", r.stoppedBy);
});

Deno.test("searchTilings: a variant replaces the best only when faster by more than the margin", async () => {
  const space = line(5);
  // 2% faster: within the default margin of 3%, the default stays.
  let r = await searchTilings(space, scripted(space, { v5: 100, v4: 98, v6: 101 }).opts);
  assert(r.best === 5 && r.bestMs === 100, `2% faster replaced the default: ${r.best}`);
  // 4% faster wins.
  r = await searchTilings(space, scripted(space, { v5: 100, v4: 96, v6: 101 }).opts);
  assert(r.best === 4 && r.bestMs === 96 && r.defaultMs === 100, `4% faster: ${r.best}`);
  // With margin 0 any faster variant wins.
  r = await searchTilings(space, scripted(space, { v5: 100, v4: 99.9 }, { margin: 0 }).opts);
  assert(r.best === 4, `margin 0: ${r.best}`);
});

Deno.test("searchTilings: a quick trial slower than best × prune skips the full measurement", async () => {
  const space = line(5);
  // v4's quick trial is 1.3× the best: pruned; v6's is exactly 1.25×: measured in full.
  const { opts, calls } = scripted(space, { v5: 10, v4: 13, v6: { quick: 12.5, full: 11 } });
  const r = await searchTilings(space, opts);
  assertSame(calls, ["v5×5", "v4×1", "v6×1", "v6×5"], "measurements");
  assertSame(outline(r), ["v5:measured:10", "v4:pruned:13", "v6:measured:11"], "trials");
  // A custom prune factor.
  const tight = scripted(space, { v5: 10, v4: 10.5, v6: 10.2 }, { prune: 1.03 });
  const t = await searchTilings(space, tight.opts);
  assertSame(outline(t), ["v5:measured:10", "v4:pruned:10.5", "v6:measured:10.2"], "prune 1.03");
});

Deno.test("searchTilings: a rejected variant is never best, even when its time is the smallest", async () => {
  const space = line(5);
  // v4 fails on its quick trial; v6 passes the quick trial (fastest of all) and fails the full.
  const script: Record<string, Script> = {
    v5: 10,
    v4: "failed verification: max error 3e-2",
    v6: { quick: 0.1, full: "did not compile" },
  };
  const { opts, calls } = scripted(space, script);
  const r = await searchTilings(space, opts);
  assertSame(calls, ["v5×5", "v4×1", "v6×1", "v6×5"], "measurements");
  assertSame(
    outline(r),
    [
      "v5:measured:10",
      "v4:rejected:failed verification: max error 3e-2",
      "v6:rejected:did not compile",
    ],
    "trials",
  );
  assert(r.best === 5 && r.bestMs === 10 && r.stoppedBy === "converged", `best ${r.best}`);
  // A time that cannot be compared (NaN, negative) is a rejection too.
  const odd = await searchTilings(space, scripted(space, { v5: 10, v4: NaN, v6: -1 }).opts);
  assertSame(
    outline(odd),
    [
      "v5:measured:10",
      "v4:rejected:measured NaN ms, not a time",
      "v6:rejected:measured -1 ms, not a time",
    ],
    "odd times",
  );
});

Deno.test("searchTilings: a rejected default throws, naming the reason", async () => {
  const space = line(5);
  await assertRejects(
    () => searchTilings(space, scripted(space, { v5: "failed verification" }).opts),
    "default tiling v5 is not eligible: failed verification",
  );
  await assertRejects(() => searchTilings(space, scripted(space, { v5: Infinity }).opts), "v5");
});

Deno.test("searchTilings: no variant is started once the budget is spent", async () => {
  const space = line(5);
  // Every measurement takes 10 ms of the clock: the default ends at +10, v4 at +30 (quick and
  // full); v6 would start at +30 >= 25.
  const { opts, calls } = scripted(space, { v5: 10, v4: 9, v6: 8 }, { budgetMs: 25 }, 100, 10);
  const r = await searchTilings(space, opts);
  assertSame(calls, ["v5×5", "v4×1", "v4×5"], "measurements");
  assert(r.stoppedBy === "budget" && r.best === 4 && r.bestMs === 9, `${r.stoppedBy} ${r.best}`);
  // A budget of 0 still measures the default, and nothing else.
  const zero = scripted(space, { v5: 10, v4: 1 }, { budgetMs: 0 });
  const z = await searchTilings(space, zero.opts);
  assertSame(zero.calls, ["v5×5"], "budget 0");
  assert(z.stoppedBy === "budget" && z.best === 5 && z.defaultMs === 10, z.stoppedBy);
  // A spent budget with nothing left to try is convergence, not the budget.
  const alone: TuneSpace<number> = { start: 0, neighbours: () => [], key: String };
  const a = await searchTilings(alone, scripted(alone, { 0: 3 }, { budgetMs: 0 }).opts);
  assert(a.stoppedBy === "converged" && a.trials.length === 1, a.stoppedBy);
});

Deno.test("searchTilings: climbs a line step by step, walking the rest of each frontier", async () => {
  const space = line(5);
  // Times fall towards v1: each frontier improves once and the next one starts from the winner.
  // v6 is walked after v4 won, and pruned against v4 (12 > 9 × 1.25), not v5 (12 < 10 × 1.25).
  const script = { v0: 6, v1: 5, v2: 7, v3: 8, v4: 9, v5: 10, v6: 12 };
  const r = await searchTilings(space, scripted(space, script).opts);
  assertSame(
    outline(r),
    [
      "v5:measured:10",
      "v4:measured:9",
      "v6:pruned:12",
      "v3:measured:8",
      "v2:measured:7",
      "v1:measured:5",
      "v0:measured:6",
    ],
    "trials",
  );
  assert(r.best === 1 && r.bestMs === 5 && r.stoppedBy === "converged", `best ${r.best}`);
  // Within one frontier the later neighbour is compared against the new best: v4 beats v5, and
  // v6 (faster than v5, not than v4 by the margin) does not replace it.
  const within = await searchTilings(space, scripted(space, { v5: 10, v4: 8, v6: 7.9 }).opts);
  assert(within.best === 4, `within a frontier: ${within.best}`);
});

/** A tiling of the 2-D grid test. */
interface Tile {
  tm: number;
  tn: number;
}

const SIDES = [1, 2, 4, 8, 16, 32, 64];

/** The grid of tm × tn over {@link SIDES}, neighbours halving or doubling one side. */
function grid(start: Tile): TuneSpace<Tile> {
  return {
    start,
    neighbours: ({ tm, tn }) =>
      [
        { tm: tm / 2, tn },
        { tm: tm * 2, tn },
        { tm, tn: tn / 2 },
        { tm, tn: tn * 2 },
      ].filter((t) => SIDES.includes(t.tm) && SIDES.includes(t.tn)),
    key: ({ tm, tn }) => `tm${tm}.tn${tn}`,
  };
}

/** A bowl of times with its bottom (1 ms) at tm 16, tn 2, plus `jitter`. */
function bowl(t: Tile, jitter = 0): number {
  return 1 + 0.4 * (Math.log2(t.tm) - 4) ** 2 + 0.3 * (Math.log2(t.tn) - 1) ** 2 + jitter;
}

Deno.test("searchTilings: a multi-step climb on a 2-D grid reaches the optimum", async () => {
  const space = grid({ tm: 2, tn: 32 });
  const counts = new Map<string, number>();
  const r = await searchTilings(space, {
    measure: (t) => {
      const k = space.key(t);
      counts.set(k, (counts.get(k) ?? 0) + 1);
      return Promise.resolve({ ms: bowl(t) });
    },
    now: () => 0,
    budgetMs: 1e9,
  });
  assertSame(r.best, { tm: 16, tn: 2 }, "best");
  assert(r.bestMs === 1 && r.stoppedBy === "converged", `${r.bestMs} ${r.stoppedBy}`);
  assert(r.defaultMs === bowl({ tm: 2, tn: 32 }), `defaultMs ${r.defaultMs}`);
  const keys = r.trials.map((t) => t.key);
  assert(new Set(keys).size === keys.length, `a key tried twice: ${keys}`);
  // Each key measured at most twice (the quick trial and the full one), and far fewer variants
  // than the 49 of the grid.
  for (const [k, n] of counts) assert(n <= 2, `${k} measured ${n} times`);
  assert(keys.length < 30, `tried ${keys.length} variants`);
});

Deno.test("searchTilings: duplicate and already tried neighbours are never measured again", async () => {
  const space: TuneSpace<number> = {
    start: 0,
    neighbours: (t) => [t, 0, 1, 1, 2, t + 1, t + 1],
    key: (t) => `v${Math.min(t, 4)}`,
  };
  const { opts, calls } = scripted(space, { v0: 10, v1: 9, v2: 8, v3: 7, v4: 6 });
  const r = await searchTilings(space, opts);
  const keys = r.trials.map((t) => t.key);
  assertSame(keys, ["v0", "v1", "v2", "v3", "v4"], "keys");
  assert(new Set(calls).size === calls.length, `a measurement repeated: ${calls}`);
});

Deno.test("searchTilings: the result is a pure function of the measurements and the clock", async () => {
  const run = () => {
    // Jittered times from a seeded generator, in call order, and a clock that advances by the
    // measured time: the budget stops the climb part-way.
    const rng = createRng(7);
    const space = grid({ tm: 1, tn: 64 });
    let clock = 0;
    return searchTilings(space, {
      measure: (t, reps) => {
        const ms = bowl(t, rng.uniform(0, 0.2));
        clock += ms * reps;
        const reject = rng.next() < 0.1 && space.key(t) !== space.key(space.start);
        return Promise.resolve(reject ? { rejected: "failed verification" } : { ms });
      },
      now: () => clock,
      budgetMs: 200,
    });
  };
  const a = await run(), b = await run();
  assertSame(a, b, "two runs");
  assert(a.trials.length > 3, `only ${a.trials.length} trials`);
});

Deno.test("searchTilings: bad options are refused", async () => {
  const space = line(5);
  for (const over of [{ reps: 0 }, { reps: 2.5 }, { margin: 1 }, { margin: -0.1 }, { prune: 0 }]) {
    await assertRejects(() => searchTilings(space, scripted(space, {}, over).opts), "needs");
  }
  await assertRejects(
    () => searchTilings(space, scripted(space, {}, { budgetMs: NaN }).opts),
    "budgetMs",
  );
});

Deno.test("splitBudget: proportional to the weights, summing to the budget", () => {
  assertSame(splitBudget([1, 2, 3, 4], 100, 0), [10, 20, 30, 40], "minMs 0");
  assertSame(splitBudget([2, 6], 80, 10), [20, 60], "all above the minimum");
  assertSame(splitBudget([], 100, 10), [], "no instances");
});

Deno.test("splitBudget: the minimum lifts small and zero weights, the rest stay proportional", () => {
  assertSame(splitBudget([1, 1000], 100, 10), [10, 90], "small weight");
  assertSame(splitBudget([0, 1, 3], 100, 10), [10, 22.5, 67.5], "zero weight");
  // 1 and 2 fall under the minimum; lifting them lowers the others' shares, not their ratio.
  assertSame(splitBudget([1, 2, 40, 60], 1000, 100), [100, 100, 320, 480], "two lifted");
  // Every weight 0: equal shares; minMs 0: zero weights get 0.
  assertSame(splitBudget([0, 0], 10, 1), [5, 5], "all zero");
  assertSame(splitBudget([0, 1], 10, 0), [0, 10], "zero weight, no minimum");
  // Too little for every minimum: equal shares.
  assertSame(splitBudget([1, 2, 5], 12, 5), [4, 4, 4], "budget under n × minMs");
});

Deno.test("splitBudget: at most the budget, at least the minimum, deterministic", () => {
  const rng = createRng(11);
  for (let i = 0; i < 500; i++) {
    const n = 1 + rng.int(12);
    const weights = Array.from({ length: n }, () => (rng.next() < 0.2 ? 0 : rng.uniform(0, 50)));
    const budget = rng.uniform(0, 10000), minMs = rng.uniform(0, 400);
    const shares = splitBudget(weights, budget, minMs);
    assertSame(splitBudget([...weights], budget, minMs), shares, "repeated call");
    const sum = shares.reduce((s, v) => s + v, 0);
    assert(sum <= budget, `sum ${sum} > budget ${budget} for [${weights}], min ${minMs}`);
    assert(sum >= budget * (1 - 1e-9), `sum ${sum} leaves budget ${budget} unused`);
    if (n * minMs <= budget) {
      for (const s of shares) assert(s >= minMs * (1 - 1e-9), `share ${s} < minimum ${minMs}`);
      // Unlifted shares are proportional: equal ms per unit of weight.
      const rates = shares.map((
        s,
        j,
      ) => (s > minMs * (1 + 1e-9) && weights[j] > 0 ? s / weights[j] : NaN))
        .filter((r) => !Number.isNaN(r));
      for (const r of rates) assert(Math.abs(r / rates[0] - 1) < 1e-9, `rates ${rates}`);
    }
  }
});

Deno.test("splitBudget: negative or non-finite inputs are refused", () => {
  assertThrows(() => splitBudget([1, -1], 100, 0), "finite and >= 0");
  assertThrows(() => splitBudget([1, NaN], 100, 0), "finite and >= 0");
  assertThrows(() => splitBudget([1], Infinity, 0), "finite and >= 0");
  assertThrows(() => splitBudget([1], 100, -1), "finite and >= 0");
});

Deno.test("another design's start is climbed from too, and wins only by more than the margin", async () => {
  // Design a: 0..4 around the default 2 (best 1 at 90); design b: 10..14 from 12 (best 14).
  const two: TuneSpace<number> = {
    start: 2,
    starts: [12],
    neighbours: (t) =>
      [t - 1, t + 1].filter((u) => (t < 10 ? u >= 0 && u <= 4 : u >= 10 && u <= 14)),
    key: (t) => `v${t}`,
  };
  const times = (b13: number, b14: number) => ({ v2: 100, v1: 90, v12: 95, v13: b13, v14: b14 });
  // b's start alone (95) is no better than a's best (90) by the margin; its climb is.
  const { opts } = scripted(two, times(80, 60));
  const r = await searchTilings(two, opts);
  assertSame([r.best, r.bestMs, r.defaultMs], [14, 60, 100], "b's climb wins");
  assertSame(
    outline(r),
    [
      "v2:measured:100",
      "v1:measured:90",
      "v3:measured:100",
      "v0:measured:100",
      "v12:measured:95",
      "v11:measured:100",
      "v13:measured:80",
      "v14:measured:60",
    ],
    "a's climb, then b's",
  );
  // b's best, 89, is within 3% of a's 90: a's stays.
  const close = await searchTilings(two, scripted(two, times(89, 88)).opts);
  assertSame([close.best, close.bestMs], [1, 90], "within the margin");
  // No budget left after a's climb: b is never measured.
  const { opts: tight, calls } = scripted(two, times(80, 60), { budgetMs: 7 });
  const cut = await searchTilings(two, tight);
  assert(cut.stoppedBy === "budget" && !calls.some((c) => c.startsWith("v12")), "budget");
  // A rejected other start is recorded and skipped.
  const bad = await searchTilings(two, scripted(two, { ...times(80, 60), v12: "no" }).opts);
  assertSame([bad.best, outline(bad).at(-1)], [1, "v12:rejected:no"], "rejected start");
});
