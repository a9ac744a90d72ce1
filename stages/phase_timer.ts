/**
 * Encoding a step's phases, one compute pass each, optionally timed with GPU timestamps
 * (`timestamp-query`; `bench --profile`).
 *
 * @module
 */

import { type Dispatch, encodeDispatches, type Gpu } from "../shaders/gpu.ts";
import { STEP_PHASES, type StepPhase } from "./step_program.ts";

/** GPU timestamps around each phase's pass. */
export class PhaseTimer {
  readonly #queries: GPUQuerySet;
  readonly #resolve: GPUBuffer;
  readonly #read: GPUBuffer;

  constructor(private readonly gpu: Gpu) {
    if (!gpu.timestamps) throw new Error("profiling needs the adapter's timestamp-query");
    const count = 2 * STEP_PHASES.length;
    this.#queries = gpu.device.createQuerySet({ type: "timestamp", count });
    this.#resolve = gpu.device.createBuffer({
      size: count * 8,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    this.#read = gpu.device.createBuffer({
      size: count * 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  /** Encodes `phases` with timestamps and their resolve; returns the phases that ran. */
  encode(encoder: GPUCommandEncoder, phases: [StepPhase, Dispatch[]][]): StepPhase[] {
    const ran = encodePhases(encoder, phases, this.#queries);
    encoder.resolveQuerySet(this.#queries, 0, 2 * ran.length, this.#resolve, 0);
    encoder.copyBufferToBuffer(this.#resolve, 0, this.#read, 0, this.#read.size);
    return ran;
  }

  /** The GPU nanoseconds of each of `ran`, once the step that encoded them has finished. */
  async read(ran: StepPhase[]): Promise<Partial<Record<StepPhase, number>>> {
    await this.gpu.guard(this.#read.mapAsync(GPUMapMode.READ));
    const ticks = new BigUint64Array(this.#read.getMappedRange().slice(0));
    this.#read.unmap();
    const out: Partial<Record<StepPhase, number>> = {};
    ran.forEach((phase, i) => (out[phase] = Number(ticks[2 * i + 1] - ticks[2 * i])));
    return out;
  }
}

/**
 * Encodes the phases that have dispatches, each as its own compute pass (with `queries`, writing
 * the timestamps of the i-th pass that ran at 2i and 2i + 1); returns the phases that ran.
 */
export function encodePhases(
  encoder: GPUCommandEncoder,
  phases: [StepPhase, Dispatch[]][],
  queries?: GPUQuerySet,
): StepPhase[] {
  const ran = phases.filter(([, dispatches]) => dispatches.length > 0);
  ran.forEach(([, dispatches], i) =>
    encodeDispatches(
      encoder,
      dispatches,
      queries &&
        { querySet: queries, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
    )
  );
  return ran.map(([phase]) => phase);
}
