/**
 * The float64 reference trainer, the project's arbiter: trains every run of a
 * {@link RunPlan} in lockstep on the CPU from the references of `reference/ops.ts`, applying
 * the plan exactly as the GPU trainer does (Lemma-2 rescale before the step, forward and
 * backward with the step's eps, SGD on S and O, perturbation after the update, with the
 * GPU's hash twin `perturbSign` for run A2). THEORY's equivalence checks run on it
 * (`reference/equivalence_test.ts`).
 *
 * @module
 */

import { perturbSign, sgdStep, updateRunningStats } from "./ops.ts";
import { runBackward, runForward, type RunningStats, statsUnit, type Tape } from "./model.ts";
import type { ModelLayout } from "../core/graph.ts";
import type { RunPlan, RunStep } from "../core/runs.ts";

export type { RunningStats } from "./model.ts";

/** Settings of the reference trainer that the plan does not cover. */
export interface ReferenceOptions {
  /** BatchNorm running-statistics momentum (PyTorch: 0.1). */
  bnMomentum: number;
  /**
   * "weightnorm": running statistics stored divided by the layer's current weight norm
   * ||W_l|| (var by ||W_l||^2) and multiplied back at evaluation, exact for run B (THEORY §5);
   * "plain": stored as PyTorch does.
   */
  runningStats: "weightnorm" | "plain";
  /**
   * Seed of run A2's perturbation stream (default 0): element i of S of run r is multiplied
   * by 1 + perturb * perturbSign(seed, t, r, i) after step t's update, as the GPU's
   * optimizer pass (shaders/sgd.ts) does with RunScalars.seed = seed and .step = t.
   */
  seed?: number;
}

/**
 * Forward + backward of one run in float64 with BatchNorm in training mode: mean loss,
 * correct count, logits and the gradient of the mean loss w.r.t. the flat params (layout of
 * core/graph.ts).
 */
export function forwardBackward(
  layout: ModelLayout,
  params: ArrayLike<number>,
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  rows: number,
  eps: number,
): { loss: number; correct: number; logits: Float64Array; grad: Float64Array; tape: Tape } {
  const tape = runForward(layout, params, x, rows, eps, { labels: y });
  const [loss, correct] = tape.values[layout.graph.loss];
  const grad = runBackward(layout, params, tape, rows, eps);
  return { loss, correct, logits: tape.values[layout.graph.logits], grad, tape };
}

/**
 * Logits only: BatchNorm in training mode (batch statistics) without `stats`, in eval mode
 * from the running statistics `stats` with them.
 */
export function forward(
  layout: ModelLayout,
  params: ArrayLike<number>,
  x: ArrayLike<number>,
  rows: number,
  eps: number,
  stats?: RunningStats,
): Float64Array {
  return runForward(layout, params, x, rows, eps, { stats }).values[layout.graph.logits];
}

/** Every run of a plan, trained in lockstep in float64. */
export class ReferenceTrainer {
  /** Flat parameters per run. */
  readonly params: Float64Array[];
  /** Momentum buffers per run, same layout. */
  readonly bufs: Float64Array[];
  /**
   * BatchNorm running statistics per run: PyTorch's initial mean 0 and variance 1 in the
   * pre-activations' units (as the GPU trainer starts them).
   */
  readonly stats: RunningStats[];
  #layout: ModelLayout;
  #plan: RunPlan;
  #opts: ReferenceOptions;
  /** The BN eps of each run's current weights (the last step's epsNext). */
  #eps: number[];

  /**
   * Run r starts from `init` (from initParams) times the plan's initial weight scale, with
   * the plan's initial buffer over S and zero buffers over O.
   */
  constructor(layout: ModelLayout, plan: RunPlan, init: Float64Array, opts: ReferenceOptions) {
    if (plan.step !== 0) throw new Error(`the plan has already planned ${plan.step} steps`);
    if (init.length !== layout.size) {
      throw new Error(`initial parameters: ${init.length} values, layout needs ${layout.size}`);
    }
    this.#layout = layout;
    this.#plan = plan;
    this.#opts = opts;
    this.params = plan.runs.map((_, r) => {
      const scale = plan.initialWeightScale(r);
      return Float64Array.from(init, (v) => v * scale);
    });
    this.bufs = plan.runs.map((_, r) => {
      const buf = new Float64Array(layout.size), factor = plan.initialBufferFactor(r);
      for (let i = 0; i < layout.sEnd; i++) buf[i] = factor * this.params[r][i];
      return buf;
    });
    this.stats = plan.runs.map((_, r) => {
      const variance = new Float64Array(layout.statsSize).fill(1);
      // PyTorch's initial variance 1 is in plain units: 1/||W_l||^2 in weight-norm units.
      for (const bn of layout.batchNorms) {
        const n = statsUnit(layout, this.params[r], bn, opts.runningStats);
        variance.fill(1 / (n * n), bn.offset, bn.offset + bn.features);
      }
      return { mean: new Float64Array(layout.statsSize), variance, mode: opts.runningStats };
    });
    // Before the first step every run is at c_0 = 1 with no rescale: plain eps.
    this.#eps = plan.runs.map(() => plan.spec.bnEps);
  }

  /**
   * One lockstep step of all runs on the same batch, applying the plan: Lemma-2 rescale of S
   * before the forward, forward/backward with the step's eps (updating the running
   * statistics), SGD on S and on O, then the perturbation of S. Returns each run's loss,
   * correct count and logits on the batch (weights before the update, training mode).
   */
  step(
    x: ArrayLike<number>,
    y: ArrayLike<number>,
    rows: number,
  ): { steps: RunStep[]; loss: number[]; correct: number[]; logits: Float64Array[] } {
    const layout = this.#layout, sEnd = layout.sEnd;
    const t = this.#plan.step, steps = this.#plan.next();
    const loss: number[] = [], correct: number[] = [], logits: Float64Array[] = [];
    steps.forEach((st, r) => {
      const p = this.params[r], buf = this.bufs[r], stats = this.stats[r];
      if (st.rescale !== 1) this.#rescale(r, st.rescale);
      const out = forwardBackward(layout, p, x, y, rows, st.eps);
      for (const bn of layout.batchNorms) {
        const end = bn.offset + bn.features;
        const cache = out.tape.caches.get(bn.node)!;
        updateRunningStats(
          stats.mean.subarray(bn.offset, end),
          stats.variance.subarray(bn.offset, end),
          cache,
          cache.xhat.length / bn.features,
          this.#opts.bnMomentum,
          statsUnit(layout, p, bn, stats.mode),
        );
      }
      const hS = { lr: st.lrS, wd: st.wdS, momentum: st.momentum, shrink: st.shrinkS };
      const hO = { lr: st.lrO, wd: st.wdO, momentum: st.momentum, shrink: st.shrinkO };
      sgdStep(p.subarray(0, sEnd), out.grad.subarray(0, sEnd), buf.subarray(0, sEnd), hS);
      sgdStep(p.subarray(sEnd), out.grad.subarray(sEnd), buf.subarray(sEnd), hO);
      if (st.perturb !== 0) {
        const seed = this.#opts.seed ?? 0;
        for (let i = 0; i < sEnd; i++) p[i] *= 1 + st.perturb * perturbSign(seed, t, r, i);
      }
      this.#eps[r] = st.epsNext;
      loss.push(out.loss);
      correct.push(out.correct);
      logits.push(out.logits);
    });
    return { steps, loss, correct, logits };
  }

  /**
   * Probe logits per run, with the eps of the weights as they are now (the last step's
   * epsNext): BN in training mode (probe batch statistics) or eval mode (running statistics).
   */
  probeLogits(x: ArrayLike<number>, rows: number, mode: "train" | "eval"): Float64Array[] {
    return this.params.map((p, r) =>
      forward(this.#layout, p, x, rows, this.#eps[r], mode === "eval" ? this.stats[r] : undefined)
    );
  }

  /**
   * Lemma 2 on run r's S: w *= s, buf /= s. Plain running statistics are in the units of the
   * pre-activations, which scale by s too, so they follow (mean *= s, var *= s^2) to keep the
   * rescale invisible in eval mode; weight-norm ones are unit-free.
   */
  #rescale(r: number, s: number): void {
    const p = this.params[r], buf = this.bufs[r], stats = this.stats[r];
    for (let i = 0; i < this.#layout.sEnd; i++) {
      p[i] *= s;
      buf[i] /= s;
    }
    if (stats.mode === "plain") {
      for (let j = 0; j < stats.mean.length; j++) {
        stats.mean[j] *= s;
        stats.variance[j] *= s * s;
      }
    }
  }
}
