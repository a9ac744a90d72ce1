/**
 * The pure schedule mathematics: run A's group-S learning-rate schedule, and run B's
 * exponential learning rate (THEORY §3): the exact recursion for any schedule of run A and
 * Theorem 1's closed form for a constant one. No state beyond what the recursion streams.
 *
 * @module
 */

/** Run A's group-S learning-rate schedule. */
export interface LrScheduleSpec {
  base: number;
  kind: "const" | "step" | "cosine";
  /**
   * Step schedule: values >= 1 are step indices, values in (0, 1) fractions of `totalSteps`
   * (rounded to the nearest step); the lr is multiplied by `factor` from that step on.
   */
  milestones: number[];
  /** Step decay factor, e.g. 0.1. */
  factor: number;
  /** Cosine: the lr reaches base * minFactor at `totalSteps` (and stays there after it). */
  minFactor: number;
  /**
   * Linear warm-up over the first `warmupSteps` (0 = none), composed with any kind as a
   * multiplier going from `warmupStartFactor` at step 0 to 1 at step `warmupSteps`.
   */
  warmupSteps: number;
  warmupStartFactor: number;
  /** Length of the run in steps (fraction milestones and the cosine period refer to it). */
  totalSteps: number;
}

/** Whether milestone `m` is a fraction of the run (in (0, 1)) rather than a step index. */
const isFraction = (m: number): boolean => m < 1;

/**
 * Whether a schedule's lr at a step depends on the run's length: cosine, or a step schedule
 * with a fraction milestone. Such a run's trajectory changes with `--steps` or `--epochs`.
 */
export function scheduleUsesLength(
  kind: LrScheduleSpec["kind"],
  milestones: readonly number[],
): boolean {
  return kind === "cosine" || (kind === "step" && milestones.some(isFraction));
}

/** Throws a one-line Error when `spec` cannot define a schedule. */
export function validateSchedule(spec: LrScheduleSpec): void {
  const bad = (what: string) => {
    throw new Error(`lr schedule: ${what}`);
  };
  if (!(spec.base > 0) || !Number.isFinite(spec.base)) bad(`base lr ${spec.base} must be > 0`);
  if (!Number.isInteger(spec.warmupSteps) || spec.warmupSteps < 0) {
    bad(`warm-up steps ${spec.warmupSteps} must be an integer >= 0`);
  }
  if (spec.warmupSteps > 0 && !(spec.warmupStartFactor >= 0)) {
    bad(`warm-up start factor ${spec.warmupStartFactor} must be >= 0`);
  }
  if (spec.kind === "step") {
    if (!(spec.factor > 0)) bad(`step factor ${spec.factor} must be > 0`);
    for (const m of spec.milestones) {
      if (!(m > 0) || (m >= 1 && !Number.isInteger(m))) {
        bad(`milestone ${m} must be a fraction in (0, 1) or a step index >= 1`);
      }
      if (isFraction(m) && !(spec.totalSteps >= 1)) {
        bad(`fraction milestone ${m} needs the total number of steps (got ${spec.totalSteps})`);
      }
    }
  } else if (spec.kind === "cosine") {
    if (!(spec.totalSteps >= 1)) bad(`cosine needs the total number of steps >= 1`);
    if (!(spec.minFactor >= 0)) bad(`cosine min factor ${spec.minFactor} must be >= 0`);
  }
}

/** A constant schedule at `base` over `totalSteps` steps (the other fields inert). */
export function constantSchedule(base: number, totalSteps: number): LrScheduleSpec {
  return {
    base,
    kind: "const",
    milestones: [],
    factor: 0.1,
    minFactor: 0,
    warmupSteps: 0,
    warmupStartFactor: 0.1,
    totalSteps,
  };
}

/**
 * The step milestone `m` falls on in a run of `totalSteps` steps: a value in (0, 1) is a
 * fraction of the run, rounded to the nearest step; any other is a step index. The one rule for
 * the schedule and the report's phase marks; null for a fraction when `totalSteps` is null.
 */
export function milestoneStep(m: number, totalSteps: number): number;
export function milestoneStep(m: number, totalSteps: number | null): number | null;
export function milestoneStep(m: number, totalSteps: number | null): number | null {
  if (!isFraction(m)) return m;
  return totalSteps === null ? null : Math.round(m * totalSteps);
}

/**
 * The step of each milestone (a fraction of the run rounded to a step), in the given order: a
 * step listed twice multiplies the lr by the factor twice, as PyTorch's MultiStepLR does.
 */
export function milestoneSteps(spec: LrScheduleSpec): number[] {
  return spec.milestones.map((m) => milestoneStep(m, spec.totalSteps));
}

/**
 * Notes on a step schedule that does what it says but maybe not what was meant: milestones that
 * fall on one step (the factor applies once per milestone) and milestones after the last step.
 */
export function milestoneNotes(spec: LrScheduleSpec): string[] {
  if (spec.kind !== "step") return [];
  const steps = milestoneSteps(spec), notes: string[] = [];
  const repeated = [...new Set(steps.filter((s, i) => steps.indexOf(s) !== i))];
  for (const s of repeated) {
    const n = steps.filter((x) => x === s).length;
    notes.push(
      `--milestones: ${n} milestones fall on step ${s}: the lr is multiplied by ` +
        `--step-factor ${spec.factor} ${n} times there (as PyTorch's MultiStepLR does)`,
    );
  }
  const late = steps.filter((s) => s >= spec.totalSteps);
  if (late.length > 0) {
    notes.push(
      `--milestones: step ${late.join(", ")} is not reached in ${spec.totalSteps} steps`,
    );
  }
  return notes;
}

/** The schedule's value at 0-based step `t` (the lr run A's group S uses in step t). */
export function lrAt(spec: LrScheduleSpec, t: number): number {
  validateSchedule(spec);
  let lr = spec.base;
  if (spec.kind === "step") {
    for (const at of milestoneSteps(spec)) if (t >= at) lr *= spec.factor;
  } else if (spec.kind === "cosine") {
    // PyTorch's CosineAnnealingLR, held at its minimum after the period instead of rising again.
    const x = Math.min(t, spec.totalSteps) / spec.totalSteps;
    lr *= spec.minFactor + (1 - spec.minFactor) * 0.5 * (1 + Math.cos(Math.PI * x));
  }
  if (t < spec.warmupSteps) {
    const f0 = spec.warmupStartFactor;
    lr *= f0 + (1 - f0) * (t / spec.warmupSteps);
  }
  return lr;
}

/**
 * THEORY §3's exact recursion, streaming: feed run A's (eta_t, lambda_t) for t = 0, 1, 2, ...;
 * each call returns run B's etaB_t = c_t c_{t+1} eta_t, c_t and c_{t+1}.
 *
 * It is computed in an equivalent form that needs no ratio eta_t / eta_{t-1} (so a schedule
 * that passes through lr 0, e.g. a warm-up from 0, is fine): with u_t = 1/c_t and run B's
 * buffer over S equal to buf_A(t)/c_{t+1} + q_t w_A(t+1),
 *
 *     q_t = gamma q_{t-1} - lambda_t u_t,   u_{t+1} = u_t + eta_t q_t,   u_0 = 1,
 *
 * and q_{-1} = 0 for zero buffers. Then k_t = u_t/u_{t+1} satisfies THEORY's
 * k_t = 1/(1 + gamma r_t (1 - k_{t-1}) - eta_t lambda_t) (the tests check both agree).
 * A nonzero q_{-1} starts run B with the buffer q_{-1} w_0 (run A's still zero):
 * q_{-1} = {@link matchedBufferFactor} reproduces Theorem 1's closed form.
 */
export class ExpLrRecursion {
  #gamma: number;
  #q: number;
  #u = 1;

  /** `initialBufferFactor` is q_{-1}: run B's initial buffer over S as a multiple of w_0. */
  constructor(momentum: number, initialBufferFactor = 0) {
    this.#gamma = momentum;
    this.#q = initialBufferFactor;
  }

  /**
   * Lemma 2 applied to run B (w *= f, f a power of two): continues the recursion in the new
   * units, u and q divided by f (exact), so the c and etaB it returns from now on include the
   * rescale (c*s, etaB*s^2) and stay in range however long the run: c_t alone overflows
   * float64 after ~10^6 steps at lr 0.1, wd 5e-4.
   */
  rescale(f: number): void {
    this.#u /= f;
    this.#q /= f;
  }

  /** The recursion's state (1/c_t and q_{t-1}); exact through JSON (float64 round-trips). */
  get state(): { u: number; q: number } {
    return { u: this.#u, q: this.#q };
  }

  set state(s: { u: number; q: number }) {
    this.#u = s.u;
    this.#q = s.q;
  }

  /** Advances by one step of run A with lr `eta` and weight decay `lambda`. */
  next(eta: number, lambda: number): { etaB: number; c: number; cNext: number } {
    const u = this.#u;
    this.#q = this.#gamma * this.#q - lambda * u;
    const uNext = u + eta * this.#q;
    if (!(uNext > 0)) {
      throw new Error(
        `ExpLR recursion: 1/c_{t+1} = ${uNext} is not positive (eta ${eta}, wd ${lambda}): ` +
          `run A's weights would change sign under this schedule`,
      );
    }
    this.#u = uNext;
    return { etaB: eta / (u * uNext), c: 1 / u, cNext: 1 / uNext };
  }
}

/**
 * Theorem 1: the larger root alpha of x^2 - (1 + gamma - lambda*eta) x + gamma = 0.
 * Computed as 1 + (alpha - 1) with alpha - 1 = lambda*eta / (beta - 1) (the roots satisfy
 * (alpha-1)(beta-1) = lambda*eta) and the discriminant expanded around gamma = 1, which avoids
 * the cancellations of the textbook formula: ~1e-17 relative instead of ~1e-14 (which c_t
 * would amplify t-fold).
 */
export function closedFormAlpha(eta: number, lambda: number, momentum: number): number {
  const le = lambda * eta;
  // b^2 - 4 gamma with b = 1 + gamma - le.
  const disc = (1 - momentum) ** 2 - 2 * le * (1 + momentum) + le * le;
  if (!(disc >= 0) || !(1 + momentum - le > 0)) {
    throw new Error(
      `closed-form ExpLR: x^2 - ${1 + momentum - le}x + ${momentum} has no positive real ` +
        `root (lr*wd = ${le} is too large for momentum ${momentum})`,
    );
  }
  return 1 - (2 * le) / (1 - momentum + le + Math.sqrt(disc));
}

/** Closed-form run B lr at step t: etaB_t = eta * alpha^(-2t-1) (and c_t = alpha^-t). */
export function closedFormEtaB(eta: number, alpha: number, t: number): number {
  return eta * Math.pow(alpha, -2 * t - 1);
}

/** The matched initial buffer of run B over S as a multiple of w_0: (alpha-1)/(eta*alpha). */
export function matchedBufferFactor(eta: number, alpha: number): number {
  return (alpha - 1) / (eta * alpha);
}
