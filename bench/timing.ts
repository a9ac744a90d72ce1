/**
 * Timing of one dispatch for the benchmarks: many dispatches per submit, the count grown until
 * a rep is long enough that the fixed submit-and-wait cost (~15 ms on lavapipe) is small, and
 * the median of several reps.
 *
 * @module
 */

import { type Dispatch, encodeDispatches, type Gpu } from "../shaders/gpu.ts";

/** A timed rep aims at this wall time, so the fixed submit/wait cost is a few percent. */
const REP_TARGET_MS = 250;
const MAX_COUNT = 4096;

/** Submits `count` dispatches of `d` in one command buffer and waits until the GPU is done. */
async function timeRep(gpu: Gpu, d: Dispatch, count: number): Promise<number> {
  const encoder = gpu.device.createCommandEncoder();
  encodeDispatches(encoder, Array(count).fill(d));
  const commands = encoder.finish();
  const t0 = performance.now();
  gpu.submit([commands]);
  await gpu.guard(gpu.device.queue.onSubmittedWorkDone());
  return performance.now() - t0;
}

/** Median ms per dispatch of `d`: warm-up, N sized so a rep takes ~250 ms, `reps` reps. */
export async function timeDispatch(gpu: Gpu, d: Dispatch, reps: number): Promise<number> {
  await timeRep(gpu, d, 1); // compiles and warms caches
  let count = 1, t = await timeRep(gpu, d, count);
  while (t < REP_TARGET_MS / 2 && count < MAX_COUNT) {
    count = Math.min(MAX_COUNT, count * Math.min(16, Math.max(2, Math.ceil(REP_TARGET_MS / t))));
    t = await timeRep(gpu, d, count);
  }
  const times: number[] = [];
  for (let r = 0; r < reps; r++) times.push(await timeRep(gpu, d, count));
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] / count;
}
