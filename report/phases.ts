/**
 * Where the learning-rate schedule changes phase (the end of warm-up, each milestone of a step
 * schedule), for the vertical marks on every plot: from the configuration when the summary has
 * it, else from run A's lr column, where a phase boundary is a jump or a kink that stands out
 * from the steps around it (a cosine's gradual bend is neither).
 *
 * @module
 */

import { milestoneStep } from "../core/schedule.ts";

/** A vertical mark on the plots. */
export interface Mark {
  step: number;
  kind: "phase" | "rescale";
  label: string;
}

/** The settings of the trainer's configuration the phase marks need (flag names). */
export interface ScheduleSettings {
  schedule?: string;
  milestones?: number[];
  "step-factor"?: number;
  warmup?: number;
  steps?: number;
}

/**
 * The phase boundaries the configuration implies, or null when they cannot be known: fraction
 * milestones need the run's planned length (`steps`, or `plannedSteps` when the run finished).
 */
export function phasesFromConfig(
  c: ScheduleSettings,
  plannedSteps: number | null,
): Mark[] | null {
  const marks: Mark[] = [];
  if ((c.warmup ?? 0) > 0) marks.push({ step: c.warmup!, kind: "phase", label: "warm-up end" });
  if (c.schedule === "step") {
    const total = (c.steps ?? 0) > 0 ? c.steps! : plannedSteps;
    for (const m of c.milestones ?? []) {
      const step = milestoneStep(m, total);
      if (step === null) return null;
      marks.push({ step, kind: "phase", label: `lr ×${c["step-factor"] ?? 0.1}` });
    }
  }
  return marks.sort((a, b) => a.step - b.step);
}

/** How far a jump or kink must stand out from its neighbours (a factor). */
const STANDS_OUT = 10;
/** Changes smaller than this fraction of the lr are rounding, not a schedule. */
const NOISE = 1e-9;

/**
 * Finds phase boundaries in a stream of (step, lr) values of run A. With slopes s_i between
 * consecutive rows, a jump at row i is a slope much steeper than both neighbouring slopes; a
 * kink at row i is a change of slope (s_{i+1} - s_i) much larger than the changes around it.
 * It keeps five rows, so it runs in constant memory.
 */
export class LrPhaseDetector {
  readonly #steps: number[] = [];
  readonly #lrs: number[] = [];
  readonly #marks: Mark[] = [];
  readonly #limit: number;
  /** Boundaries found beyond the `limit` kept. */
  extra = 0;

  /** Keeps at most `limit` marks (a very noisy column must not flood the plots). */
  constructor(limit = 50) {
    this.#limit = limit;
  }

  /** Feeds the next row's lr (rows in step order; non-finite values are skipped). */
  add(step: number, lr: number): void {
    if (!Number.isFinite(lr)) return;
    if (this.#steps.length > 0 && step === this.#steps[this.#steps.length - 1]) return;
    this.#steps.push(step);
    this.#lrs.push(lr);
    if (this.#steps.length > 5) {
      this.#steps.shift();
      this.#lrs.shift();
    }
    // Row j is decided once rows j+1 and j+2 are known: it is then third from the end.
    if (this.#steps.length >= 3) this.#decide(this.#steps.length - 3);
  }

  /** The marks found, in step order, after deciding the last two rows. */
  finish(): Mark[] {
    const n = this.#steps.length;
    for (let i = Math.max(0, n - 2); i < n; i++) this.#decide(i);
    return this.#marks;
  }

  /** Slope of the segment that ends at window row i (undefined outside the window). */
  #slope(i: number): number | undefined {
    if (i < 1 || i >= this.#steps.length) return undefined;
    return (this.#lrs[i] - this.#lrs[i - 1]) / (this.#steps[i] - this.#steps[i - 1]);
  }

  #decide(i: number): void {
    const s = (k: number) => this.#slope(k);
    const here = s(i), next = s(i + 1), before = s(i - 1);
    const scale = NOISE * Math.abs(this.#lrs[i]);
    const big = (v: number, ...around: (number | undefined)[]) =>
      Math.abs(v) > scale &&
      around.every((a) => a === undefined || Math.abs(v) > STANDS_OUT * Math.abs(a));
    if (here !== undefined && big(here, before, next)) {
      const ratio = this.#lrs[i] / this.#lrs[i - 1];
      this.#push(this.#steps[i], `lr ×${Number(ratio.toPrecision(3))}`);
      return;
    }
    if (here === undefined || next === undefined) return;
    const change = next - here;
    const changeBefore = before === undefined ? undefined : here - before;
    const after = s(i + 2), changeAfter = after === undefined ? undefined : after - next;
    // A jump's neighbours see a large change of slope too: leave them to the jump.
    const nearJump = (before !== undefined && big(before, s(i - 2), here)) ||
      big(next, here, after);
    if (!nearJump && big(change, changeBefore, changeAfter)) {
      this.#push(this.#steps[i], "lr kink");
    }
  }

  #push(step: number, label: string): void {
    if (this.#marks.some((m) => m.step === step)) return;
    if (this.#marks.length >= this.#limit) this.extra++;
    else this.#marks.push({ step, kind: "phase", label });
  }
}
