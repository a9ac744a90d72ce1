/**
 * The autotuner: for every matmul and convolution a training step builds, and its
 * normalizations' training passes (`worthTuning` in shaders/tilings.ts), the tiling that runs
 * fastest on the adapter at hand among those that compute the right result.
 *
 * - What to tune: the step is recorded on a dry GPU through a recording {@link Tilings} table
 *   (the same kernels, shapes and operand alignments the trainer builds), so no list of shapes
 *   is kept by hand.
 * - Verified before eligible: a variant is timed only after its outputs matched the float64
 *   reference on fresh inputs laid out as the step's (`tune_cases.ts`); one that does not build
 *   or compile is rejected with its one-line reason.
 * - Time: GPU timestamps around one compute pass of repeated copies of a variant's dispatches
 *   where the adapter has `timestamp-query`, the wall clock around a submit otherwise; the
 *   repeat count is fixed per instance from its default's time, and a variant is timed in pairs
 *   with the default, so every variant is timed alike and a drifting host cancels out.
 * - Budget: every default is verified and timed first; the rest of the budget is split over
 *   the instances in proportion to their default's time (a probe-only shape counts a tenth),
 *   the most expensive tuned first, and what one instance leaves passes on to the next. The
 *   search itself is `core/tune_search.ts`.
 *
 * @module
 */

import { SEARCH_DEFAULTS, searchTilings, splitBudget } from "../core/tune_search.ts";
import { createRng } from "../core/prng.ts";
import { type Dispatch, encodeDispatches, type Gpu } from "../shaders/gpu.ts";
import { compilingGpu, dryGpu } from "../shaders/dry_gpu.ts";
import {
  builderTiling,
  tilingMismatch,
  type TilingOverride,
  Tilings,
  tuneKey,
  type TuneRequest,
  tuneSpace,
} from "../shaders/tilings.ts";
import { type TrainerOptions, trainerSetup } from "./trainer.ts";
import { buildVariant, TuneCase } from "./tune_cases.ts";

/** Every kernel instance the step of `opts` builds that the tuner can tile, by key. */
export function tuneRequests(opts: TrainerOptions, limits: GPUSupportedLimits): TuneRequest[] {
  const tilings = new Tilings();
  trainerSetup(dryGpu(limits), { ...opts, tilings });
  return [...tilings.requests.values()];
}

/** What tuning one kernel instance found. */
export interface TunedKernel {
  key: string;
  /** The builder's tiling that replaces the default ({} when the default was fastest). */
  tiling: TilingOverride;
  defaultMs: number;
  tunedMs: number;
  /** Variants tried (the default included) and, of them, rejected ones. */
  tried: number;
  rejected: number;
  /** Why variants were rejected (the first three reasons). */
  notes: string[];
}

/** How to tune. */
export interface TunerOptions {
  /** Milliseconds for everything (the defaults are always measured). */
  budgetMs: number;
  /** Row count of the training batch: other shapes (the probe's) weigh a tenth. */
  batchRows: number;
  log(line: string): void;
  /** The clock (ms); injected in tests. */
  now?: () => number;
  /** Builds a variant's dispatches on the case's request; tests wrap {@link buildVariant}. */
  build?: typeof buildVariant;
}

/** Times passes of repeated dispatches: GPU timestamps where the adapter has them. */
class KernelTimer {
  readonly #queries?: GPUQuerySet;
  readonly #resolve?: GPUBuffer;
  readonly #read?: GPUBuffer;

  constructor(readonly gpu: Gpu) {
    if (!gpu.timestamps) return;
    const device = gpu.device;
    this.#queries = device.createQuerySet({ type: "timestamp", count: 2 });
    this.#resolve = device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    this.#read = device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  /** What times a pass: "GPU timestamps" or "wall clock". */
  get clock(): string {
    return this.#queries ? "GPU timestamps" : "wall clock";
  }

  /** Milliseconds per run of `ds` (a variant's dispatches) of `count` copies in one pass. */
  async time(ds: Dispatch[], count: number): Promise<number> {
    const { gpu } = this, encoder = gpu.device.createCommandEncoder();
    const copies = Array.from({ length: count }, () => ds).flat();
    if (!this.#queries) {
      encodeDispatches(encoder, copies);
      const commands = encoder.finish(), t0 = performance.now();
      gpu.submit([commands]);
      await gpu.guard(gpu.device.queue.onSubmittedWorkDone());
      return (performance.now() - t0) / count;
    }
    const pass = encoder.beginComputePass({
      timestampWrites: {
        querySet: this.#queries,
        beginningOfPassWriteIndex: 0,
        endOfPassWriteIndex: 1,
      },
    });
    for (const c of copies) {
      pass.setPipeline(c.pipeline);
      pass.setBindGroup(0, c.bindGroup);
      pass.dispatchWorkgroups(...c.workgroups);
    }
    pass.end();
    encoder.resolveQuerySet(this.#queries, 0, 2, this.#resolve!, 0);
    encoder.copyBufferToBuffer(this.#resolve!, 0, this.#read!, 0, 16);
    gpu.submit([encoder.finish()]);
    await gpu.guard(this.#read!.mapAsync(GPUMapMode.READ));
    const [t0, t1] = new BigUint64Array(this.#read!.getMappedRange().slice(0));
    this.#read!.unmap();
    return Number(t1 - t0) / 1e6 / count;
  }

  /** `reps` timings of {@link time}, one after another. */
  async reps(ds: Dispatch[], count: number, reps: number): Promise<number[]> {
    const times: number[] = [];
    for (let i = 0; i < reps; i++) times.push(await this.time(ds, count));
    return times;
  }

  dispose(): void {
    this.#queries?.destroy();
    this.#resolve?.destroy();
    this.#read?.destroy();
  }
}

/** A repetition aims at this long (GPU timestamps / wall clock, whose submit costs more). */
const REP_MS = { timestamps: 10, wall: 60 };
/** Each instance's search gets at least this much of the budget where the budget allows. */
const MIN_SEARCH_MS = 500;

/**
 * Repetitions of a full measurement of a kernel taking `ms`: fewer for long kernels, whose one
 * pass already averages over many workgroups and whose measurements cost the budget most.
 */
const repsOf = (ms: number) => (ms >= LONG_KERNEL_MS ? 3 : SEARCH_DEFAULTS.reps);
const LONG_KERNEL_MS = 20;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Whether `r` runs in the training pass (rows of the training batch), not only the probe's. */
function inTrainingPass(r: TuneRequest, batchRows: number): boolean {
  switch (r.kernel) {
    case "conv":
      return r.spec.shape.n === batchRows;
    case "matmul":
      return (r.spec.transA ? r.spec.k : r.spec.m) === batchRows;
    default:
      // A backward, or the forward that saves for it (the only ones requested).
      return r.pass === "backward" || !!r.spec.xhat;
  }
}

/** One instance under tuning: its case, variants built so far, the repeat count. */
interface Instance {
  request: TuneRequest;
  key: string;
  tc: TuneCase;
  /** The default's dispatches, and how many copies a timed pass holds. */
  dispatches: Dispatch[];
  count: number;
  defaultMs: number;
  weight: number;
}

/**
 * Tunes `requests` on `gpu` within `opts.budgetMs`: every default verified and timed, then the
 * search per instance, most expensive first. Returns one result per request, in request order.
 */
export async function tuneKernels(
  gpu: Gpu,
  requests: TuneRequest[],
  opts: TunerOptions,
): Promise<TunedKernel[]> {
  const now = opts.now ?? (() => performance.now()), started = now();
  const build = opts.build ?? buildVariant;
  const timer = new KernelTimer(gpu);
  const repMs = gpu.timestamps ? REP_MS.timestamps : REP_MS.wall;
  // Fresh inputs every time: a variant that is right only on some inputs has no fixed ones to pass.
  const seed = Math.floor(Math.random() * 2 ** 32), rng = createRng(seed);
  const instances: Instance[] = [], cases: TuneCase[] = [];
  const results = new Map<string, TunedKernel>();
  try {
    for (const request of requests) {
      const key = tuneKey(request), tc = new TuneCase(gpu, request, rng);
      cases.push(tc);
      const d = build(gpu, tc.request, {});
      const wrong = await tc.verify(d);
      if (wrong) throw new Error(`tune: the default tiling of ${key} is wrong: ${wrong}`);
      const once = await timer.time(d, 1);
      const count = Math.max(1, Math.min(256, Math.round(repMs / Math.max(once, 1e-3))));
      const defaultMs = median(await timer.reps(d, count, repsOf(once)));
      const weight = defaultMs * (inTrainingPass(request, opts.batchRows) ? 1 : 0.1);
      instances.push({ request, key, tc, dispatches: d, count, defaultMs, weight });
    }
    opts.log(
      `tune: ${instances.length} kernels, defaults timed in ${
        ((now() - started) / 1000).toFixed(1)
      } s (${timer.clock}; inputs from seed ${seed})`,
    );
    const order = [...instances].sort((a, b) => b.weight - a.weight);
    for (let i = 0; i < order.length; i++) {
      const left = Math.max(0, opts.budgetMs - (now() - started));
      const share = splitBudget(order.slice(i).map((x) => x.weight), left, MIN_SEARCH_MS)[0];
      const result = await tuneInstance(gpu, order[i], share, { build, timer, now });
      results.set(order[i].key, result);
      opts.log(describe(result));
    }
  } finally {
    for (const tc of cases) tc.dispose();
    timer.dispose();
  }
  return requests.map((r) => results.get(tuneKey(r))!);
}

/** One line of a tuned instance for stderr. */
function describe(t: TunedKernel): string {
  const gain = t.defaultMs / t.tunedMs;
  const choice = Object.keys(t.tiling).length ? JSON.stringify(t.tiling) : "default";
  return `tune: ${t.key}: ${t.defaultMs.toFixed(3)} -> ${t.tunedMs.toFixed(3)} ms ` +
    `(${gain.toFixed(2)}x, ${t.tried} tried, ${t.rejected} rejected): ${choice}`;
}

/** `r`'s kernel built at `tiling`, or why not: its builder refused, or the adapter cannot compile. */
async function tryBuild(
  gpu: Gpu,
  build: typeof buildVariant,
  r: TuneRequest,
  tiling: TilingOverride,
): Promise<Dispatch[] | string> {
  try {
    const { value, error } = await gpu.capture(() => build(gpu, r, tiling));
    return error ? `does not compile: ${error}` : value;
  } catch (e) {
    return `not built: ${(e as Error).message}`;
  }
}

/**
 * `chosen` less each tiling of `requests` their kernels cannot take on `gpu`: a field the
 * kernel's tiling lacks or of another type, one its builder refuses, a pipeline the adapter
 * does not compile (a workgroup past the device's limits). A tilings cache or a checkpoint is a
 * file a person may edit or carry to another machine, and the run must not fail on it: each
 * tiling dropped is one line, its kernel keeps the default. The kernels are only compiled (the
 * pipelines cached for the step), not verified again: `deno task tune` verified what it wrote.
 */
export async function buildableTilings(
  gpu: Gpu,
  requests: TuneRequest[],
  chosen: ReadonlyMap<string, TilingOverride>,
  log: (line: string) => void,
): Promise<Map<string, TilingOverride>> {
  const kept = new Map(chosen), compiling = compilingGpu(gpu);
  for (const r of requests) {
    const key = tuneKey(r), t = chosen.get(key);
    if (!t || Object.keys(t).length === 0) continue;
    const built = tilingMismatch(r, t) ?? await tryBuild(compiling, buildVariant, r, t);
    if (typeof built === "string") {
      kept.delete(key);
      log(`tiling ${JSON.stringify(t)} of ${key} not used (${built}); the default runs`);
    }
  }
  return kept;
}

/** The search over one instance's space within `budgetMs`. */
async function tuneInstance(
  gpu: Gpu,
  x: Instance,
  budgetMs: number,
  env: { build: typeof buildVariant; timer: KernelTimer; now: () => number },
): Promise<TunedKernel> {
  const space = tuneSpace(x.request, gpu.device.limits);
  const built = new Map<string, Dispatch[] | string>();
  const notes = new Set<string>();
  /** The variant's dispatches after they verified, or why it is not eligible. */
  const eligible = async (t: TilingOverride): Promise<Dispatch[] | string> => {
    const key = space.key(t);
    let d = built.get(key);
    if (d === undefined) {
      d = await tryBuild(gpu, env.build, x.tc.request, builderTiling(t));
      if (typeof d !== "string") d = (await x.tc.verify(d)) ?? d;
      if (typeof d === "string" && notes.size < 3) notes.add(d);
      built.set(key, d);
    }
    return d;
  };
  const startKey = space.key(space.start);
  const result = await searchTilings(space, {
    async measure(t, reps) {
      if (space.key(t) === startKey) return { ms: x.defaultMs };
      const d = await eligible(t);
      if (typeof d === "string") return { rejected: d };
      // Timed in pairs with the default, rep by rep, and scaled by the default's time: a CPU
      // adapter's speed drifts with its host by up to 2x within seconds, a ratio much less.
      const ratios: number[] = [];
      for (let i = 0; i < reps; i++) {
        const base = await env.timer.time(x.dispatches, x.count);
        ratios.push((await env.timer.time(d, x.count)) / base);
      }
      return { ms: x.defaultMs * median(ratios) };
    },
    now: env.now,
    budgetMs,
    reps: repsOf(x.defaultMs),
  });
  const isDefault = space.key(result.best) === startKey;
  return {
    key: x.key,
    tiling: isDefault ? {} : builderTiling(result.best),
    defaultMs: result.defaultMs,
    tunedMs: result.bestMs,
    tried: result.trials.length,
    rejected: result.trials.filter((t) => t.outcome === "rejected").length,
    notes: [...notes],
  };
}
