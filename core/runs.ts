/**
 * The per-step plan of every run: which learning rate, weight decay, BatchNorm eps, Lemma-2
 * rescale and perturbation each run uses at each step, and the predicted weight-norm ratio
 * c_t. The GPU trainer writes it into the `RunScalars` records (stages/gpu.ts) and the float64
 * reference trainer (reference/trainer.ts) applies it, so both do exactly the same thing.
 *
 * The runs (THEORY §3, §6, §8):
 * - A: SGD + momentum + weight decay on group S with the lr schedule (the reference).
 * - B: no weight decay on S, lr from the exact recursion ("exact") or Theorem 1's closed form
 *   with a matched initial buffer ("closed") or a zero one ("closed-zero"); BN eps * c_t^2
 *   in eps mode "scaled".
 * - A1: A with every initial weight multiplied by 1 + 2^-23 (one float32 ulp).
 * - A2: A with a relative random perturbation of S of 2^-23 after every update.
 * - C: constant lr = the schedule's base on S and no weight decay (gradient-flow control).
 * Group O has the same lr and (coupled) weight decay in every run; `wdStyle` only concerns S.
 *
 * Lemma-2 rescales (THEORY §4): a run rescaled by a cumulative factor s (a power of two) has
 * S weights s times, buffers 1/s times those of the unrescaled run; exact equivalence then
 * needs lrS * s^2, coupled wdS / s^2 (since grad and wd*w must scale alike), the decoupled
 * shrink unchanged, and BN eps * s^2 (in both eps modes, so a rescale is always invisible).
 *
 * @module
 */

import {
  closedFormAlpha,
  ExpLrRecursion,
  lrAt,
  type LrScheduleSpec,
  matchedBufferFactor,
  validateSchedule,
} from "./schedule.ts";

/** The runs the tool can train in lockstep, A (the reference) first: the one list of run names. */
export const RUN_NAMES = ["A", "B", "A1", "A2", "C"] as const;

/** One of {@link RUN_NAMES}. */
export type RunName = typeof RUN_NAMES[number];

/** One float32 ulp at 1: A1's initial scale is 1 + ULP, A2's per-step perturbation ULP. */
export const ULP32 = 2 ** -23;

/** Everything that decides the runs' per-step hyperparameters. */
export interface RunsSpec {
  /** Must start with "A" (the reference of every distance); no duplicates. */
  runs: RunName[];
  /** Run B's flavour (THEORY §3); closed* need a constant schedule without warm-up. */
  explr: "exact" | "closed" | "closed-zero";
  /** Run A's group-S lr schedule. */
  schedule: LrScheduleSpec;
  /** Run A's group-S weight decay (lambda); with wdStyle "decoupled" the per-step shrink. */
  wd: number;
  /** gamma, every run and group. */
  momentum: number;
  /** Group O, identical in every run (coupled weight decay). */
  lrO: number;
  wdO: number;
  bnEps: number;
  /** scaled: run B uses eps * c_t^2 (exact); fixed: plain eps everywhere (as PyTorch). */
  bnEpsMode: "scaled" | "fixed";
  /**
   * THEORY §8: "decoupled" = w <- (1 - wd) w - lr * buf on S for runs A, A1, A2 (B requires
   * "coupled": its recursion assumes PyTorch's coupled weight decay).
   */
  wdStyle: "coupled" | "decoupled";
}

/** One run's values for one step: written into its RunScalars record (stages/gpu.ts). */
export interface RunStep {
  lrS: number;
  wdS: number;
  shrinkS: number;
  lrO: number;
  wdO: number;
  shrinkO: number;
  momentum: number;
  /** BN eps for this step's forward/backward (weights w_t). */
  eps: number;
  /** BN eps for evaluating the weights after this step's update (w_{t+1}): the probe's. */
  epsNext: number;
  /** Lemma-2 factor applied to S (w *= s, buf /= s) before this step's forward; 1 = none. */
  rescale: number;
  /** Relative amplitude of the random perturbation of S after the update (A2: 2^-23). */
  perturb: number;
  /**
   * Predicted ||w_run,S|| / ||w_A,S|| after this step's update: c_{t+1} times the rescales
   * applied so far (1 for A, A1, A2 before rescales); NaN for C (no prediction).
   */
  cPred: number;
  /** The same for the weights this step's forward uses (c_t times the rescales). */
  cPredBefore: number;
}

/**
 * Everything a {@link RunPlan} carries from one step to the next, for checkpoints: the next
 * step, run B's recursion state, each run's cumulative Lemma-2 factor (log2) and pending factor.
 */
export interface PlanState {
  step: number;
  recursion?: { u: number; q: number };
  log2Scale: number[];
  pending: number[];
}

/** The per-step plan of all runs; call {@link RunPlan.next} once per step, in order. */
export class RunPlan {
  /** The runs, run 0 being A. */
  readonly runs: RunName[];
  #spec: RunsSpec;
  #t = 0;
  #recursion: ExpLrRecursion | undefined;
  #alpha = 1;
  /** log2 of the cumulative Lemma-2 factor per run (an integer: the factors are powers of two). */
  #log2Scale: number[];
  #pending: number[];

  /** Validates `spec`; throws a one-line Error for an inconsistent one. */
  constructor(spec: RunsSpec) {
    validateRuns(spec);
    const schedule = { ...spec.schedule, milestones: [...spec.schedule.milestones] };
    this.#spec = { ...spec, runs: [...spec.runs], schedule };
    this.runs = [...spec.runs];
    this.#log2Scale = this.runs.map(() => 0);
    this.#pending = this.runs.map(() => 1);
    if (!this.runs.includes("B")) return;
    if (spec.explr === "exact") this.#recursion = new ExpLrRecursion(spec.momentum);
    else this.#alpha = closedFormAlpha(spec.schedule.base, spec.wd, spec.momentum);
  }

  /** The validated spec (a copy). */
  get spec(): Readonly<RunsSpec> {
    return this.#spec;
  }

  /** Steps planned so far (the 0-based index of the step the next call to next() plans). */
  get step(): number {
    return this.#t;
  }

  /** The state to continue from (a copy); see {@link RunPlan.restore}. */
  get state(): PlanState {
    return {
      step: this.#t,
      recursion: this.#recursion?.state,
      log2Scale: [...this.#log2Scale],
      pending: [...this.#pending],
    };
  }

  /** Continues from `state` (taken from a plan of the same spec); the next call plans its step. */
  restore(state: PlanState): void {
    const R = this.runs.length;
    if (state.log2Scale.length !== R || state.pending.length !== R) {
      throw new Error(`plan state has ${state.log2Scale.length} runs, expected ${R}`);
    }
    if (!this.#recursion !== !state.recursion) {
      throw new Error("plan state and spec disagree about run B's recursion");
    }
    this.#t = state.step;
    if (this.#recursion && state.recursion) this.#recursion.state = state.recursion;
    this.#log2Scale = [...state.log2Scale];
    this.#pending = [...state.pending];
  }

  /** Multiplier of run r's initial weights, all tensors (A1: 1 + 2^-23; else 1). THEORY §6. */
  initialWeightScale(r: number): number {
    return this.#run(r) === "A1" ? 1 + ULP32 : 1;
  }

  /** Run r's initial momentum buffer over S as a multiple of w_0 (B with "closed"; else 0). */
  initialBufferFactor(r: number): number {
    if (this.#run(r) !== "B" || this.#spec.explr !== "closed") return 0;
    return matchedBufferFactor(this.#spec.schedule.base, this.#alpha);
  }

  /**
   * Asks for a Lemma-2 rescale of run r by s (a power of two, so it is exact in floating
   * point) before the next step: w *= s, buf /= s; later lrS *= s^2, wdS /= s^2, eps *= s^2.
   * Run A is the reference of every ratio and never grows past its weight-decay equilibrium,
   * so it cannot be rescaled.
   */
  requestRescale(r: number, s: number): void {
    if (this.#run(r) === "A") throw new Error("run A is the reference and cannot be rescaled");
    if (!(s > 0) || !Number.isFinite(s) || 2 ** Math.round(Math.log2(s)) !== s) {
      throw new Error(`rescale factor ${s} of run ${this.runs[r]} is not a power of two`);
    }
    this.#pending[r] *= s;
  }

  /** The plan of step t = 0, 1, 2, ... (call in order): one RunStep per run. */
  next(): RunStep[] {
    const spec = this.#spec, t = this.#t++;
    const eta = lrAt(spec.schedule, t);
    // Run B's lr, c_t and c_{t+1} already include its Lemma-2 factor s (as etaB*s^2, c*s):
    // the products stay in range where etaB or c alone would overflow in a long run.
    const iB = this.runs.indexOf("B");
    let b = { etaB: NaN, c: NaN, cNext: NaN };
    if (this.#recursion) {
      this.#recursion.rescale(this.#pending[iB]);
      b = this.#recursion.next(eta, spec.wd);
    } else if (iB >= 0) {
      // Closed form in log2 space: c_t s = 2^(log2 s - t log2 alpha), exact in s.
      const l2a = Math.log2(this.#alpha);
      const l2s = this.#log2Scale[iB] + Math.log2(this.#pending[iB]);
      b = {
        etaB: eta * 2 ** (2 * l2s - (2 * t + 1) * l2a),
        c: 2 ** (l2s - t * l2a),
        cNext: 2 ** (l2s - (t + 1) * l2a),
      };
    }
    return this.runs.map((name, r) => {
      const rescale = this.#pending[r];
      this.#pending[r] = 1;
      this.#log2Scale[r] += Math.log2(rescale); // exact: rescale is a power of two
      const s = 2 ** this.#log2Scale[r], s2 = s * s;
      const plainEps = spec.bnEps * s2;
      const common = {
        lrO: spec.lrO,
        wdO: spec.wdO,
        shrinkO: 0,
        momentum: spec.momentum,
        rescale,
        perturb: name === "A2" ? ULP32 : 0,
      };
      if (name === "B") {
        const scaled = spec.bnEpsMode === "scaled";
        return {
          ...common,
          lrS: b.etaB,
          wdS: 0,
          shrinkS: 0,
          eps: scaled ? spec.bnEps * b.c * b.c : plainEps,
          epsNext: scaled ? spec.bnEps * b.cNext * b.cNext : plainEps,
          cPred: b.cNext,
          cPredBefore: b.c,
        };
      }
      if (name === "C") {
        return {
          ...common,
          lrS: spec.schedule.base * s2,
          wdS: 0,
          shrinkS: 0,
          eps: plainEps,
          epsNext: plainEps,
          cPred: NaN,
          cPredBefore: NaN,
        };
      }
      const coupled = spec.wdStyle === "coupled";
      return {
        ...common,
        lrS: eta * s2,
        wdS: coupled ? spec.wd / s2 : 0,
        shrinkS: coupled ? 0 : spec.wd,
        eps: plainEps,
        epsNext: plainEps,
        cPred: s,
        cPredBefore: s,
      };
    });
  }

  #run(r: number): RunName {
    const name = this.runs[r];
    if (name === undefined) throw new Error(`no run ${r} (runs ${this.runs.join(",")})`);
    return name;
  }
}

/** Throws a one-line Error unless `spec` describes a consistent set of runs. */
export function validateRuns(spec: RunsSpec): void {
  const bad = (what: string) => {
    throw new Error(`runs: ${what}`);
  };
  const { runs } = spec;
  if (runs[0] !== "A") bad(`the runs (${runs.join(",")}) must start with A, the reference`);
  for (const name of runs) if (!RUN_NAMES.includes(name)) bad(`unknown run "${name}"`);
  if (new Set(runs).size !== runs.length) bad(`duplicate run in ${runs.join(",")}`);
  if (!(spec.momentum >= 0 && spec.momentum < 1)) bad(`momentum ${spec.momentum} not in [0, 1)`);
  for (const [k, v] of [["wd", spec.wd], ["lrO", spec.lrO], ["wdO", spec.wdO]] as const) {
    if (!(v >= 0) || !Number.isFinite(v)) bad(`${k} ${v} must be a finite number >= 0`);
  }
  if (!(spec.bnEps >= 0) || !Number.isFinite(spec.bnEps)) bad(`BN eps ${spec.bnEps} must be >= 0`);
  validateSchedule(spec.schedule);
  if (!runs.includes("B")) return;
  if (spec.wdStyle !== "coupled") {
    bad("run B needs wdStyle coupled: its lr recursion assumes PyTorch's coupled weight decay");
  }
  if (spec.explr !== "exact") {
    const { kind, warmupSteps } = spec.schedule;
    if (kind !== "const" || warmupSteps > 0) {
      bad(
        `explr ${spec.explr} is Theorem 1's closed form for a constant lr; schedule ${kind}` +
          `${warmupSteps > 0 ? ` with ${warmupSteps} warm-up steps` : ""} needs explr exact`,
      );
    }
  }
}
