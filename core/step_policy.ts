/**
 * The step policy: what each training step does, decided from the step number and what was read
 * back, without the GPU, so every schedule of decisions can be tested on the CPU.
 *
 * - Metering: every `every`-th step from step 0, and the last step.
 * - The probe and the eval-mode probe: on the first metered step at or after each multiple of
 *   their period (eval mode never with a period of 0), and the probe at the last step too.
 * - Lemma-2 rescales (THEORY §4): a run whose S weight norm read after step t passes the
 *   threshold is rescaled before step t + {@link RESCALE_LAG}. The lag is fixed so that the
 *   trajectory depends neither on how many steps are in flight, nor on `every`, nor on where a
 *   run was checkpointed and resumed.
 * - Divergence: a non-finite norm or loss; the earliest step wins, and later steps are not shown.
 * - Checkpoints: a snapshot after every `checkpointEvery` steps.
 *
 * @module
 */

import type { RunName } from "./runs.ts";

/** Steps between the step whose norms decide a rescale and the step it is applied before. */
export const RESCALE_LAG = 3;

/** A rescale decided from the norms of an earlier step, applied before step `at`. */
export interface ScheduledRescale {
  run: number;
  at: number;
  factor: number;
}

/**
 * The policy's state between steps, as checkpoints store it (its fields and their meaning are a
 * file format: old checkpoints must resume unchanged).
 */
export interface StepperState {
  /** Decided rescales not yet applied. */
  scheduled: ScheduledRescale[];
  /**
   * Per run, the step before which its latest rescale is (or was) applied, -1 for none: the
   * norms of earlier steps still show the old scale and decide nothing.
   */
  rescaleAt: number[];
  /** The first step at or after which a metered step evaluates the probe. */
  nextProbe: number;
  /** The first step at or after which a metered step evaluates the eval-mode probe. */
  nextEval: number;
}

/**
 * The Lemma-2 factor for a run whose S weight norm is `norm`: 1 while `norm` <= `threshold`,
 * else the power of two that brings the norm into (threshold/4, threshold/2], so the rescale is
 * exact in floating point and the next one is at least a doubling away.
 */
export function rescaleFactor(norm: number, threshold: number): number {
  return norm > threshold ? 2 ** -(Math.ceil(Math.log2(norm / threshold)) + 1) : 1;
}

/** The flags that decide the policy. */
export interface StepPolicyOptions {
  /** The runs, A first (run 0 is the reference and never rescaled). */
  runs: readonly RunName[];
  /** Meter every N-th step (N >= 1), starting with step 0, and the last step. */
  every: number;
  /** Steps of the whole run. */
  totalSteps: number;
  /** The probe's period in steps (>= 1). */
  probeEvery: number;
  /** The eval-mode probe's period in steps (0 = never). */
  evalEvery: number;
  /** Rescale a run when its S weight norm passes this. */
  rescaleAbove: number;
  /** Snapshot after every this many steps (0 = never by cadence). */
  checkpointEvery: number;
  /** The state of a resumed run, as {@link StepPolicy.state} gave it. */
  resume?: StepperState;
}

/** What one step does, as {@link StepPolicy.plan} decides it. */
export interface StepDecision {
  step: number;
  /** Read the step's metrics back. */
  meter: boolean;
  /** Evaluate the probe (training mode); only on metered steps. */
  probe: boolean;
  /** Evaluate the eval-mode probe; only on metered steps. */
  evalMode: boolean;
  /** Rescales to request from the run plan before this step, in the order they were decided. */
  rescales: { run: number; factor: number }[];
  /** Snapshot after this step (checkpoint cadence). */
  checkpoint: boolean;
}

/**
 * Decides every step from its number and what was read back. Call {@link plan} once per step in
 * order, after feeding the {@link norms} of every step up to {@link normsDueBefore}; feed norms
 * in step order. The object holds no GPU handle and does no I/O.
 */
export class StepPolicy {
  readonly #opts: StepPolicyOptions;
  readonly #scheduled: ScheduledRescale[];
  readonly #rescaleAt: number[];
  #nextProbe: number;
  #nextEval: number;
  #divergedAt = Infinity;
  #diverged?: string;

  /** A policy from step 0, or from `opts.resume`. */
  constructor(opts: StepPolicyOptions) {
    // A period of 0 would put NaN into the state, which a checkpoint cannot hold.
    if (!(opts.every >= 1 && opts.probeEvery >= 1 && opts.evalEvery >= 0)) {
      throw new Error(
        `step policy: needs every >= 1, probeEvery >= 1, evalEvery >= 0 (got ${opts.every}, ${opts.probeEvery}, ${opts.evalEvery})`,
      );
    }
    this.#opts = opts;
    const state = opts.resume;
    this.#scheduled = (state?.scheduled ?? []).map((s) => ({ ...s }));
    this.#rescaleAt = [...(state?.rescaleAt ?? opts.runs.map(() => -1))];
    this.#nextProbe = state?.nextProbe ?? 0;
    this.#nextEval = state?.nextEval ?? 0;
  }

  /** The last step whose norms must be fed before step `step` is planned. */
  normsDueBefore(step: number): number {
    return step - RESCALE_LAG;
  }

  /** What step `step` does; consumes its scheduled rescales and advances the probe cadence. */
  plan(step: number): StepDecision {
    const o = this.#opts;
    const rescales = this.#scheduled.filter((s) => s.at === step)
      .map(({ run, factor }) => ({ run, factor }));
    // Rescales scheduled for earlier steps were applied there (or never: after a stop).
    const pending = this.#scheduled.filter((s) => s.at > step);
    this.#scheduled.splice(0, this.#scheduled.length, ...pending);
    const lastStep = step === o.totalSteps - 1;
    const meter = step % o.every === 0 || lastStep;
    const probe = meter && (step >= this.#nextProbe || lastStep);
    if (probe) this.#nextProbe = (Math.floor(step / o.probeEvery) + 1) * o.probeEvery;
    const evalMode = meter && o.evalEvery > 0 && step >= this.#nextEval;
    if (evalMode) this.#nextEval = (Math.floor(step / o.evalEvery) + 1) * o.evalEvery;
    const checkpoint = o.checkpointEvery > 0 && (step + 1) % o.checkpointEvery === 0;
    return { step, meter, probe, evalMode, rescales, checkpoint };
  }

  /**
   * Every run's S weight norm read back after step `step`: a non-finite one diverges; one above
   * the threshold schedules a rescale before step `step +` {@link RESCALE_LAG}, unless it is run
   * A's or the run's latest rescale is applied after `step` (the norm still shows the old scale).
   */
  norms(step: number, norms: readonly number[]): void {
    norms.forEach((norm, r) => {
      if (!Number.isFinite(norm)) return this.#diverge(step, r, "S weight norm", norm);
      // Run A is the reference of every ratio: never rescaled (weight decay bounds its norm).
      if (r === 0 || step < this.#rescaleAt[r]) return;
      const factor = rescaleFactor(norm, this.#opts.rescaleAbove);
      if (factor === 1) return;
      this.#rescaleAt[r] = step + RESCALE_LAG;
      this.#scheduled.push({ run: r, at: this.#rescaleAt[r], factor });
    });
  }

  /** Every run's training loss at metered step `step`: a non-finite one diverges. */
  losses(step: number, losses: readonly number[]): void {
    losses.forEach((loss, r) => {
      if (!Number.isFinite(loss)) this.#diverge(step, r, "loss", loss);
    });
  }

  /** The first step known to have diverged (Infinity while none has). */
  get divergedAt(): number {
    return this.#divergedAt;
  }

  /** Why training diverged (naming the step, run and value), undefined while it has not. */
  get diverged(): string | undefined {
    return this.#diverged;
  }

  /** Whether step `step`'s record is shown: every step up to the first that diverged. */
  shows(step: number): boolean {
    return step <= this.#divergedAt;
  }

  /**
   * A copy of the state to resume from after the last planned step, once the norms of every step
   * up to it are fed: a policy built with it decides the remaining steps as this one would.
   */
  get state(): StepperState {
    return {
      scheduled: this.#scheduled.map((s) => ({ ...s })),
      rescaleAt: [...this.#rescaleAt],
      nextProbe: this.#nextProbe,
      nextEval: this.#nextEval,
    };
  }

  #diverge(step: number, run: number, what: string, value: number): void {
    if (step >= this.#divergedAt) return;
    this.#divergedAt = step;
    this.#diverged = `training diverged at step ${step}: run ${
      this.#opts.runs[run]
    } has ${what} ${value}`;
  }
}
