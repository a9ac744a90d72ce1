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

import {
  batchNormBackward,
  type BatchNormCache,
  batchNormEval,
  batchNormForward,
  columnSum,
  dot,
  matmul,
  reluBackward,
  reluForward,
  sgdStep,
  softmaxCrossEntropy,
  updateRunningStats,
  type Vec,
} from "./ops.ts";
import type { MlpLayout, ParamTensor } from "../stages/model.ts";
import type { RunPlan, RunStep } from "../core/runs.ts";
import { perturbSign } from "./ops.ts";

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
   * perturbKernel does with RunScalars.seed = seed and .step = t.
   */
  seed?: number;
}

/** One run's BatchNorm running statistics, all hidden layers concatenated (statsOffset). */
export interface RunningStats {
  mean: Float64Array;
  variance: Float64Array;
  mode: "weightnorm" | "plain";
}

/** What the training-mode forward keeps for the backward. */
interface Tape {
  /** Input of each hidden block's linear layer, then the head's input. */
  inputs: Float64Array[];
  caches: BatchNormCache[];
  logits: Float64Array;
}

/** Tensor `t` of a flat parameter vector, as a view when possible. */
function tensor(params: ArrayLike<number>, t: ParamTensor): Float64Array {
  if (params instanceof Float64Array) return params.subarray(t.offset, t.offset + t.size);
  return Float64Array.from({ length: t.size }, (_, i) => params[t.offset + i]);
}

function optional(params: ArrayLike<number>, t: ParamTensor | undefined): Float64Array | undefined {
  return t && tensor(params, t);
}

/** Frobenius norm of a hidden block's weight: the unit of weight-norm running statistics. */
function weightNorm(params: ArrayLike<number>, t: ParamTensor): number {
  const w = tensor(params, t);
  return Math.sqrt(dot(w, w));
}

/** Forward through the layer graph; BN in training mode unless `stats` is given (eval). */
function run(
  layout: MlpLayout,
  params: ArrayLike<number>,
  x: Vec,
  rows: number,
  eps: number,
  stats?: RunningStats,
): Tape {
  const inputs: Float64Array[] = [];
  const caches: BatchNormCache[] = [];
  let h: Float64Array = Float64Array.from(x);
  for (const block of layout.hidden) {
    inputs.push(h);
    const w = tensor(params, block.weight);
    const z = matmul(h, w, rows, block.width, block.inputs);
    const gamma = optional(params, block.gamma), beta = optional(params, block.beta);
    let y: Float64Array;
    if (stats) {
      const at = block.statsOffset, end = at + block.width;
      const unit = stats.mode === "weightnorm" ? weightNorm(params, block.weight) : 1;
      const mean = stats.mean.subarray(at, end), variance = stats.variance.subarray(at, end);
      y = batchNormEval(z, rows, block.width, eps, mean, variance, unit, gamma, beta);
    } else {
      const bn = batchNormForward(z, rows, block.width, eps, gamma, beta);
      caches.push(bn);
      y = bn.y;
    }
    h = reluForward(y);
  }
  inputs.push(h);
  const { head } = layout;
  const logits = matmul(
    h,
    tensor(params, head.weight),
    rows,
    head.classes,
    head.inputs,
    false,
    false,
    tensor(params, head.bias),
  );
  return { inputs, caches, logits };
}

/** Backward of a training-mode tape: the gradient of the mean loss w.r.t. the flat params. */
function backward(
  layout: MlpLayout,
  params: ArrayLike<number>,
  tape: Tape,
  y: ArrayLike<number>,
  rows: number,
): { loss: number; correct: number; grad: Float64Array } {
  const { head } = layout;
  const grad = new Float64Array(layout.size);
  const ce = softmaxCrossEntropy(tape.logits, y, rows, head.classes);
  const hLast = tape.inputs[layout.hidden.length];
  grad.set(matmul(hLast, ce.dlogits, head.inputs, head.classes, rows, true), head.weight.offset);
  grad.set(columnSum(ce.dlogits, rows, head.classes), head.bias.offset);
  let dh = matmul(
    ce.dlogits,
    tensor(params, head.weight),
    rows,
    head.inputs,
    head.classes,
    false,
    true,
  );
  for (let l = layout.hidden.length - 1; l >= 0; l--) {
    const block = layout.hidden[l], cache = tape.caches[l];
    const gamma = optional(params, block.gamma);
    // ReLU's output is the next layer's input; its backward needs only the sign.
    const dy = reluBackward(dh, tape.inputs[l + 1]);
    const bn = batchNormBackward(dy, cache, rows, block.width, gamma);
    if (block.gamma) grad.set(bn.dgamma, block.gamma.offset);
    if (block.beta) grad.set(bn.dbeta, block.beta.offset);
    grad.set(
      matmul(tape.inputs[l], bn.dx, block.inputs, block.width, rows, true),
      block.weight.offset,
    );
    if (l > 0) {
      const w = tensor(params, block.weight);
      dh = matmul(bn.dx, w, rows, block.inputs, block.width, false, true);
    }
  }
  return { loss: ce.loss, correct: ce.correct, grad };
}

/**
 * Forward + backward of one run in float64 with BatchNorm in training mode: mean loss,
 * correct count, logits and the gradient of the mean loss w.r.t. the flat params (layout of
 * stages/model.ts).
 */
export function forwardBackward(
  layout: MlpLayout,
  params: ArrayLike<number>,
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  rows: number,
  eps: number,
): { loss: number; correct: number; logits: Float64Array; grad: Float64Array } {
  const tape = run(layout, params, x, rows, eps);
  return { ...backward(layout, params, tape, y, rows), logits: tape.logits };
}

/**
 * Logits only: BatchNorm in training mode (batch statistics) without `stats`, in eval mode
 * from the running statistics `stats` with them.
 */
export function forward(
  layout: MlpLayout,
  params: ArrayLike<number>,
  x: ArrayLike<number>,
  rows: number,
  eps: number,
  stats?: RunningStats,
): Float64Array {
  return run(layout, params, x, rows, eps, stats).logits;
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
  #layout: MlpLayout;
  #plan: RunPlan;
  #opts: ReferenceOptions;
  /** The BN eps of each run's current weights (the last step's epsNext). */
  #eps: number[];

  /**
   * Run r starts from `init` (from initParams) times the plan's initial weight scale, with
   * the plan's initial buffer over S and zero buffers over O.
   */
  constructor(layout: MlpLayout, plan: RunPlan, init: Float64Array, opts: ReferenceOptions) {
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
      if (opts.runningStats === "weightnorm") {
        for (const block of layout.hidden) {
          const n = weightNorm(this.params[r], block.weight);
          variance.fill(1 / (n * n), block.statsOffset, block.statsOffset + block.width);
        }
      }
      return { mean: new Float64Array(layout.statsSize), variance, mode: opts.runningStats };
    });
    // Before the first step every run is at c_0 = 1 with no rescale: plain eps.
    this.#eps = plan.runs.map(() => plan.spec.bnEps);
  }

  /**
   * One lockstep step of all runs on the same batch, applying the plan: Lemma-2 rescale of S
   * before the forward, forward/backward with the step's eps (updating the running
   * statistics), SGD on S and on O, then the perturbation of S.
   */
  step(
    x: ArrayLike<number>,
    y: ArrayLike<number>,
    rows: number,
  ): { steps: RunStep[]; loss: number[]; correct: number[] } {
    const layout = this.#layout, sEnd = layout.sEnd;
    const t = this.#plan.step, steps = this.#plan.next();
    const loss: number[] = [], correct: number[] = [];
    steps.forEach((st, r) => {
      const p = this.params[r], buf = this.bufs[r], stats = this.stats[r];
      if (st.rescale !== 1) this.#rescale(r, st.rescale);
      const tape = run(layout, p, x, rows, st.eps);
      const out = backward(layout, p, tape, y, rows);
      layout.hidden.forEach((block, l) => {
        const at = block.statsOffset, end = at + block.width;
        const unit = stats.mode === "weightnorm" ? weightNorm(p, block.weight) : 1;
        updateRunningStats(
          stats.mean.subarray(at, end),
          stats.variance.subarray(at, end),
          tape.caches[l],
          rows,
          this.#opts.bnMomentum,
          unit,
        );
      });
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
    });
    return { steps, loss, correct };
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
