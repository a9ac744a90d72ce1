/**
 * A ring of mappable buffers through which each submitted step's results come back to the CPU.
 * A slot is reused only once its previous read has finished, so with N slots at most N steps
 * are outstanding: the ring is also the trainer's bound on steps in flight.
 *
 * @module
 */

import type { Gpu } from "../shaders/gpu.ts";
import { decodeReals, type Precision, realBytes, type Reals } from "../shaders/precision.ts";

/** One slot: its buffer and the read that last used it. */
interface Slot {
  buffer: GPUBuffer;
  read?: Promise<unknown>;
}

/** A ring of `slots` mappable buffers of `reals` reals of `precision` each. */
export class ReadbackRing {
  readonly #slots: Slot[];
  #next = 0;

  constructor(
    private readonly gpu: Gpu,
    private readonly precision: Precision,
    slots: number,
    reals: number,
  ) {
    this.#slots = Array.from({ length: slots }, () => ({
      buffer: gpu.device.createBuffer({
        size: Math.max(16, Math.ceil((reals * realBytes(precision)) / 16) * 16),
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: "readback",
      }),
    }));
  }

  /** The next slot's buffer, once the read that used it last has finished. */
  async acquire(): Promise<GPUBuffer> {
    const slot = this.#slots[this.#next];
    await slot.read;
    return slot.buffer;
  }

  /**
   * Reads the first `reals` reals of the slot just acquired once the GPU has written them (after
   * the submit that copies into it), and moves on to the next slot.
   */
  read(reals: number): Promise<Reals> {
    const slot = this.#slots[this.#next];
    this.#next = (this.#next + 1) % this.#slots.length;
    const bytes = reals * realBytes(this.precision);
    const read = this.gpu.guard(slot.buffer.mapAsync(GPUMapMode.READ, 0, bytes)).then(() => {
      const out = decodeReals(this.precision, slot.buffer.getMappedRange(0, bytes).slice(0));
      slot.buffer.unmap();
      return out;
    });
    slot.read = read.catch(() => {}); // a failed read is reported to its reader, not here
    return read;
  }
}
