/**
 * Initial weights and momentum buffers of every run, from one seed.
 *
 * @module
 */

import type { ModelLayout } from "./graph.ts";
import { createRng } from "./prng.ts";
import type { RunPlan } from "./runs.ts";

/**
 * PyTorch's default initialisation from a seed, in float64: Linear and Conv weights and biases
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), BatchNorm gamma 1 and beta 0. Draws in layout order.
 */
export function initParams(layout: ModelLayout, seed: number): Float64Array {
  const rng = createRng(seed);
  const p = new Float64Array(layout.size);
  for (const t of layout.tensors) {
    const view = p.subarray(t.offset, t.offset + t.size);
    if (t.role === "gamma") view.fill(1);
    else if (t.role === "beta") view.fill(0);
    else {
      const bound = 1 / Math.sqrt(t.fanIn);
      for (let i = 0; i < view.length; i++) view[i] = rng.uniform(-bound, bound);
    }
  }
  return p;
}

/**
 * Run-stacked float32 initial weights and momentum buffers of every run: one float64
 * initialisation from the seed (S weights × `initScale`), rounded to float32, then
 * {@link runStates}.
 */
export function initialState(
  layout: ModelLayout,
  plan: RunPlan,
  seed: number,
  initScale: number,
): { params: Float32Array; bufs: Float64Array } {
  const base = Float32Array.from(
    initParams(layout, seed),
    (v, i) => (i < layout.sEnd ? v * initScale : v),
  );
  return runStates(layout, plan, base);
}

/**
 * Every run's initial state from run A's float32 weights `base`: each run's own multiplier
 * applied in float32 (A1: × (1 + 2^-23), one ulp, as PyTorch would) and its initial buffer
 * over S (closed-form B: matched buffer), in float64 so a df64 trainer starts from the exact
 * product (a float32 one rounds it on upload).
 */
export function runStates(
  layout: ModelLayout,
  plan: RunPlan,
  base: Float32Array,
): { params: Float32Array; bufs: Float64Array } {
  const R = plan.runs.length, P = layout.size;
  const params = new Float32Array(R * P), bufs = new Float64Array(R * P);
  for (let r = 0; r < R; r++) {
    const scale = Math.fround(plan.initialWeightScale(r)), factor = plan.initialBufferFactor(r);
    for (let i = 0; i < P; i++) params[r * P + i] = Math.fround(base[i] * scale);
    for (let i = 0; i < layout.sEnd; i++) bufs[r * P + i] = factor * params[r * P + i];
  }
  return { params, bufs };
}
