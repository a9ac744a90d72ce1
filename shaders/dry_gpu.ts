/**
 * A GPU that records instead of computing: a buffer is its description (size, usage, label), a
 * bind group keeps its entries, a pipeline compiles nothing, queue writes go nowhere. Kernel
 * builders run on it unchanged, so the buffer planner can record a pass to learn which dispatch
 * binds which buffer before any real buffer exists, and a step's memory can be sized (and a
 * step too large for the adapter refused) before allocating, or with no GPU at all.
 *
 * @module
 */

import type { Dispatch, Gpu } from "./gpu.ts";

/** The limits the kernels and buffers consult, as a device reports them. */
export type DeviceLimits = Pick<
  GPUSupportedLimits,
  | "maxStorageBufferBindingSize"
  | "maxBufferSize"
  | "minStorageBufferOffsetAlignment"
  | "maxComputeWorkgroupsPerDimension"
>;

/** WebGPU's default limits (the least an adapter offers): sizing with no GPU at hand. */
export const DEFAULT_LIMITS: DeviceLimits = {
  maxStorageBufferBindingSize: 134217728,
  maxBufferSize: 268435456,
  minStorageBufferOffsetAlignment: 256,
  maxComputeWorkgroupsPerDimension: 65535,
};

/** A dry GPU and every buffer created on it, in order. */
export interface DryGpu extends Gpu {
  readonly buffers: GPUBuffer[];
}

/** A dry GPU with `limits` (a real device's, or {@link DEFAULT_LIMITS}). */
export function dryGpu(limits: DeviceLimits = DEFAULT_LIMITS): DryGpu {
  const buffers: GPUBuffer[] = [];
  const device = {
    limits,
    queue: { writeBuffer() {} },
    createBuffer(d: GPUBufferDescriptor) {
      const buffer = { size: d.size, usage: d.usage, label: d.label ?? "", destroy() {} };
      buffers.push(buffer as unknown as GPUBuffer);
      return buffer;
    },
    createBindGroup: (d: GPUBindGroupDescriptor) => ({ label: d.label, entries: d.entries }),
  } as unknown as GPUDevice;
  const pipeline = { getBindGroupLayout: () => ({}) } as unknown as GPUComputePipeline;
  return {
    buffers,
    device,
    adapterDescription: "dry run",
    driver: "dry run",
    implementation: "deno",
    timestamps: false,
    f64: true,
    pipeline: () => pipeline,
    failure: new Promise<never>(() => {}),
    guard: (p) => p,
    scoped: (fn) => fn(),
    capture: (fn) => Promise.resolve({ value: fn() }),
    submit() {},
  };
}

/**
 * A dry GPU whose pipelines are `gpu`'s: a kernel built on it is compiled by the real adapter
 * (its errors caught by `gpu.capture`, the pipeline cached for later builds) while its buffers
 * and bind groups stay records. It checks that a kernel compiles without the memory to run it.
 */
export function compilingGpu(gpu: Gpu): Gpu {
  return { ...dryGpu(gpu.device.limits), pipeline: gpu.pipeline, capture: gpu.capture };
}

/** The buffers a dispatch recorded on a dry GPU binds. */
export function boundBuffers(dispatch: Dispatch): GPUBuffer[] {
  const entries = (dispatch.bindGroup as unknown as { entries: Iterable<GPUBindGroupEntry> })
    .entries;
  return [...entries].map((e) => (e.resource as GPUBufferBinding).buffer);
}

/** Bytes of every buffer created on `gpu` so far. */
export function dryBytes(gpu: DryGpu): number {
  return gpu.buffers.reduce((sum, b) => sum + b.size, 0);
}
