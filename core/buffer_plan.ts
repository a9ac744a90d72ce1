/**
 * The buffer planner's assignment (issue 22): the transient tensors of a step's passes
 * (activations, gradients, what a forward saves for its backward) placed in a few shared
 * buffers, "slots", so that no two tensors alive at the same time share one. Passes run one
 * after another and none of their transient tensors outlives its pass, so every pass starts
 * with all slots free and the slots serve every pass: the step needs about the largest pass's
 * peak, not the sum of all passes' tensors (the colouring is greedy: 1.2x the peak at the
 * median of 40,000 random plans, 2.2x at worst).
 *
 * Lifetimes count dispatches within a pass and are inclusive: a tensor read by the dispatch
 * that writes another is alive beside it, so the two never share a slot (no kernel is asked to
 * work in place through the planner).
 *
 * @module
 */

/** One tensor to place: its bytes and the first and last dispatch (inclusive) that bind it. */
export interface Lifetime {
  bytes: number;
  start: number;
  end: number;
}

/** The assignment: each slot's bytes, and each pass's tensors' slots (in the given order). */
export interface BufferPlan {
  slotBytes: number[];
  slotOf: number[][];
}

/**
 * Interval colouring, greedy in order of start (larger tensors first at equal start): a tensor
 * takes the free slot that holds it most tightly, else the largest free slot, grown to it (a
 * slot costs its largest tensor, so growing one costs less than adding one), else a new slot.
 */
export function planBuffers(passes: readonly (readonly Lifetime[])[]): BufferPlan {
  const slotBytes: number[] = [];
  const slotOf = passes.map((tensors) => {
    for (const t of tensors) {
      if (!(t.bytes >= 0 && t.start <= t.end)) {
        throw new Error(`planBuffers: bad lifetime ${JSON.stringify(t)}`);
      }
    }
    const freeFrom = slotBytes.map(() => -Infinity);
    const out = new Array<number>(tensors.length);
    const order = tensors.map((_, i) => i).sort((a, b) =>
      tensors[a].start - tensors[b].start || tensors[b].bytes - tensors[a].bytes || a - b
    );
    for (const i of order) {
      const { bytes, start, end } = tensors[i];
      let fit = -1, largest = -1;
      for (let s = 0; s < slotBytes.length; s++) {
        if (freeFrom[s] >= start) continue;
        if (slotBytes[s] >= bytes && (fit < 0 || slotBytes[s] < slotBytes[fit])) fit = s;
        if (largest < 0 || slotBytes[s] > slotBytes[largest]) largest = s;
      }
      const slot = fit >= 0 ? fit : largest >= 0 ? largest : slotBytes.length;
      if (slot === slotBytes.length) {
        slotBytes.push(0);
        freeFrom.push(-Infinity);
      }
      slotBytes[slot] = Math.max(slotBytes[slot], bytes);
      freeFrom[slot] = end;
      out[i] = slot;
    }
    return out;
  });
  return { slotBytes, slotOf };
}
