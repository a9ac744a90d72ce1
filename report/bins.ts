/**
 * The reduction that keeps a plot small however long the run: a series streams into at most
 * `capacity` bins of equal width in steps, each keeping its minimum and maximum (and the steps
 * where they occurred). The total step count is not known while streaming, so when a step falls
 * past the last bin the width doubles and neighbouring bins merge in pairs: memory stays
 * bounded and no extreme is ever lost. At the end the bins are merged once more into one column
 * per pixel of the plot, each drawn as its minimum and maximum, so a lone spike stays visible.
 *
 * @module
 */

/** A point of a plotted series. */
export interface Point {
  step: number;
  value: number;
}

/** Min/max bins of one series. */
export class MinMaxBins {
  readonly #capacity: number;
  #origin = NaN;
  #width = 1;
  #used = 0;
  readonly #min: Float64Array;
  readonly #minStep: Float64Array;
  readonly #max: Float64Array;
  readonly #maxStep: Float64Array;
  /** Finite values added. */
  count = 0;
  /** Values skipped because they were NaN or ±Infinity. */
  nonFinite = 0;

  /** At most `capacity` bins (an even number >= 2) are kept while streaming. */
  constructor(capacity: number) {
    if (!(capacity >= 2) || capacity % 2 !== 0) throw new Error(`bad bin capacity ${capacity}`);
    this.#capacity = capacity;
    this.#min = new Float64Array(capacity).fill(Infinity);
    this.#max = new Float64Array(capacity).fill(-Infinity);
    this.#minStep = new Float64Array(capacity);
    this.#maxStep = new Float64Array(capacity);
  }

  /** Adds `value` at `step` (steps do not go below the first one added). */
  add(step: number, value: number): void {
    if (!Number.isFinite(value)) {
      this.nonFinite++;
      return;
    }
    if (Number.isNaN(this.#origin)) this.#origin = step;
    let bin = Math.floor((step - this.#origin) / this.#width);
    while (bin >= this.#capacity) {
      this.#halve();
      bin = Math.floor((step - this.#origin) / this.#width);
    }
    this.count++;
    this.#used = Math.max(this.#used, bin + 1);
    if (value < this.#min[bin]) {
      this.#min[bin] = value;
      this.#minStep[bin] = step;
    }
    if (value > this.#max[bin]) {
      this.#max[bin] = value;
      this.#maxStep[bin] = step;
    }
  }

  /** Doubles the bin width: bins 2j and 2j+1 become bin j. */
  #halve(): void {
    const half = this.#capacity / 2;
    for (let j = 0; j < half; j++) {
      const a = 2 * j, b = a + 1;
      const lo = this.#min[b] < this.#min[a] ? b : a;
      const hi = this.#max[b] > this.#max[a] ? b : a;
      this.#min[j] = this.#min[lo];
      this.#minStep[j] = this.#minStep[lo];
      this.#max[j] = this.#max[hi];
      this.#maxStep[j] = this.#maxStep[hi];
    }
    this.#min.fill(Infinity, half);
    this.#max.fill(-Infinity, half);
    this.#used = Math.ceil(this.#used / 2);
    this.#width *= 2;
  }

  /** The current bin width in steps (a power of two). */
  get width(): number {
    return this.#width;
  }

  /**
   * The series reduced to at most `columns` pixel columns over the steps `[first, last]`: each
   * column's minimum and maximum in step order (one point when they coincide). With no more
   * points than columns, every point is returned as it is.
   */
  points(columns: number, first: number, last: number): Point[] {
    const out: Point[] = [];
    const span = Math.max(1, last - first + 1);
    let column = -1, lo = -1, hi = -1;
    const emit = () => {
      if (column < 0) return;
      const a = { step: this.#minStep[lo], value: this.#min[lo] };
      const b = { step: this.#maxStep[hi], value: this.#max[hi] };
      if (a.step === b.step && a.value === b.value) out.push(a);
      else out.push(...(a.step <= b.step ? [a, b] : [b, a]));
    };
    for (let i = 0; i < this.#used; i++) {
      if (this.#min[i] === Infinity) continue; // an empty bin
      const start = this.#origin + i * this.#width;
      const c = Math.min(columns - 1, Math.max(0, Math.floor(((start - first) / span) * columns)));
      if (c !== column) {
        emit();
        column = c;
        lo = hi = i;
      } else {
        if (this.#min[i] < this.#min[lo]) lo = i;
        if (this.#max[i] > this.#max[hi]) hi = i;
      }
    }
    emit();
    return out;
  }
}
