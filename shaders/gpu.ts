/**
 * The WebGPU runtime: one adapter and device per process, a pipeline cache, buffer helpers,
 * and the conventions every kernel in `shaders/` follows.
 *
 * Conventions:
 * - every tensor is row-major, of reals `R` in the trainer's precision (f32, df64 or f64: see
 *   `precision.ts`; labels: u32), and *run-stacked*: element `i` of run `r` lives at
 *   `offset + r * runStride + i` of its buffer (a {@link TensorView}); a tensor shared by all
 *   runs (the input batch) has `runStride` 0;
 * - a kernel is dispatched with the run index in `workgroup_id.z` (or folded into x), so R runs
 *   of the same architecture execute in one dispatch;
 * - a kernel module exports its WGSL and a builder that returns a {@link Dispatch}; its float64
 *   reference lives in `reference/`, which the kernel's tests compare against; bind groups and
 *   uniforms are built once at setup, never per step.
 *
 * @module
 */

import type { RunStep } from "../core/runs.ts";
import { decodeReals, encodeReals, type Precision, realBytes, type Reals } from "./precision.ts";
import { requestChosenAdapter } from "./adapters.ts";
import { type GpuChoice, gpuChoiceFromEnv, type WebGpuImplementation } from "./webgpu.ts";

/**
 * A run-stacked tensor inside a GPU buffer; offsets and strides count elements of the slot's
 * type (4 bytes for f32 and u32, 8 for a df64 or f64 `R`).
 */
export interface TensorView {
  buffer: GPUBuffer;
  /** Element offset of run 0's first element. */
  offset: number;
  /** Elements between consecutive runs; 0 when every run shares the tensor. */
  runStride: number;
}

/** One recorded compute dispatch: everything needed to replay it inside a pass. */
export interface Dispatch {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
}

export { GpuUnavailableError } from "./webgpu.ts";

/** Thrown (through {@link Gpu.failure}) when the device is lost or reports a validation error. */
export class GpuFailureError extends Error {}

/** The process's GPU: device, adapter description, pipeline cache and a failure signal. */
export interface Gpu {
  device: GPUDevice;
  /** Human-readable adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  adapterDescription: string;
  /**
   * The adapter's vendor, architecture, device and description as the implementation reports
   * them (a tilings cache files its tunings under it, `pipeline/tune.ts`).
   */
  driver: string;
  /** The WebGPU implementation the device comes from. */
  implementation: WebGpuImplementation;
  /** Whether compute passes can write timestamps (the adapter offers `timestamp-query`). */
  timestamps: boolean;
  /** Whether shaders may use native f64 (the adapter offers `shader-f64`; `--precision f64`). */
  f64: boolean;
  /** Compiles `code` once per distinct source and entry point and returns the cached pipeline. */
  pipeline(code: string, entryPoint?: string): GPUComputePipeline;
  /** Rejects with {@link GpuFailureError} on device loss or an uncaptured error; never resolves. */
  failure: Promise<never>;
  /** Races `p` against {@link failure}, so no wait on the GPU can hang after a device error. */
  guard<T>(p: Promise<T>): Promise<T>;
  /** Runs `fn` (WebGPU calls) inside error scopes whose errors reject {@link failure}. */
  scoped<T>(fn: () => T): T;
  /**
   * Runs `fn` with its validation errors (a shader that does not compile) returned, first line
   * only, instead of failing the device.
   */
  capture<T>(fn: () => T): Promise<{ value: T; error?: string }>;
  /** Submits `commands` to the queue inside {@link scoped}. */
  submit(commands: GPUCommandBuffer[]): void;
}

/** The adapter and the implementation, as logs and summaries name them. */
export function gpuName(gpu: Pick<Gpu, "adapterDescription" | "implementation">): string {
  return `${gpu.adapterDescription} (${gpu.implementation})`;
}

let shared: { choice: GpuChoice; gpu: Promise<Gpu> } | undefined;

/**
 * Returns the process-wide GPU, acquiring adapter and device on first use: the implementation
 * and adapter of `choice` (default: the environment's, {@link gpuChoiceFromEnv}). One process
 * holds one GPU; asking again with another choice throws.
 */
export function acquireGpu(choice: GpuChoice = gpuChoiceFromEnv()): Promise<Gpu> {
  if (!shared) {
    shared = { choice, gpu: createGpu(choice) };
  } else if (shared.choice.webgpu !== choice.webgpu || shared.choice.adapter !== choice.adapter) {
    throw new Error("acquireGpu: this process already holds another implementation or adapter");
  }
  return shared.gpu;
}

async function createGpu(choice: GpuChoice): Promise<Gpu> {
  const { adapter, description } = await requestChosenAdapter(choice);
  const info = adapter.info;
  const limits = adapter.limits;
  const timestamps = adapter.features.has("timestamp-query");
  // Not in every WebGPU's feature list (a native extension), hence the cast.
  const f64 = adapter.features.has("shader-f64");
  const device = await adapter.requestDevice({
    requiredFeatures: [
      ...(timestamps ? ["timestamp-query" as const] : []),
      ...(f64 ? ["shader-f64" as GPUFeatureName] : []),
    ],
    requiredLimits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
    },
  });
  let fail: (e: Error) => void = () => {};
  const failure = new Promise<never>((_, reject) => (fail = reject));
  failure.catch(() => {}); // observed through guard(); never an unhandled rejection
  device.lost.then((info) => {
    if (info.reason !== "destroyed") {
      fail(new GpuFailureError(`GPU device lost: ${info.message || info.reason}`));
    }
  });
  const fatal = (error: GPUError) =>
    fail(new GpuFailureError(`GPU error: ${error.message.split("\n")[0]}`));
  device.addEventListener("uncapturederror", (ev) => fatal((ev as GPUUncapturedErrorEvent).error));
  let capturing = 0; // inside capture(): its scope takes the errors
  const scoped = <T>(fn: () => T): T => {
    if (capturing > 0) return fn();
    for (const filter of ERROR_FILTERS) device.pushErrorScope(filter);
    try {
      return fn();
    } finally {
      for (const _ of ERROR_FILTERS) {
        device.popErrorScope().then((e) => e && fatal(e), () => {});
      }
    }
  };
  const cache = new Map<string, GPUComputePipeline>();
  return {
    device,
    adapterDescription: description,
    driver: [info.vendor, info.architecture, info.device, info.description]
      .filter((v) => v).join(" / "),
    implementation: choice.webgpu,
    timestamps,
    f64,
    failure,
    guard: <T>(p: Promise<T>) => Promise.race([p, failure]),
    scoped,
    async capture(fn) {
      device.pushErrorScope("validation");
      capturing++;
      let value;
      try {
        value = fn();
      } finally {
        capturing--;
      }
      const error = await device.popErrorScope();
      return { value, error: error ? error.message.trim().split("\n")[0] : undefined };
    },
    submit: (commands) => scoped(() => device.queue.submit(commands)),
    pipeline(code, entryPoint = "main") {
      const key = `${entryPoint}\n${code}`;
      let p = cache.get(key);
      if (!p) {
        p = scoped(() => {
          const module = device.createShaderModule({ code });
          return device.createComputePipeline({ layout: "auto", compute: { module, entryPoint } });
        });
        cache.set(key, p);
      }
      return p;
    },
  };
}

/**
 * Every error a WebGPU call can raise is caught by these scopes ({@link Gpu.scoped}) and turned
 * into {@link Gpu.failure}: Dawn's Node-API build prints errors that reach its uncaptured-error
 * handler to stdout, which carries the data.
 */
const ERROR_FILTERS: readonly GPUErrorFilter[] = ["validation", "out-of-memory", "internal"];

/** Usage of buffers that kernels read and write and tests upload to and read back from. */
export const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/**
 * Creates a storage buffer of `elements` elements of `bytes` each (default 4; rounded up to 16
 * bytes). Throws a one-line error naming the buffer when it exceeds what the adapter can bind.
 */
export function storageBuffer(gpu: Gpu, elements: number, label?: string, bytes = 4): GPUBuffer {
  const size = Math.max(16, Math.ceil((elements * bytes) / 16) * 16);
  const limit = gpu.device.limits.maxStorageBufferBindingSize;
  if (size > limit) {
    throw new Error(
      `GPU buffer "${label ?? "unnamed"}" needs ${(size / 2 ** 20).toFixed(0)} MiB, more than ` +
        `the adapter binds (${(limit / 2 ** 20).toFixed(0)} MiB): use a smaller --batch-size ` +
        `or --probe, or fewer --runs`,
    );
  }
  return gpu.scoped(() => gpu.device.createBuffer({ size, usage: STORAGE, label }));
}

/** Creates a storage buffer holding `data` (f32 or u32). */
export function uploadBuffer(
  gpu: Gpu,
  data: Float32Array | Uint32Array,
  label?: string,
): GPUBuffer {
  const buf = storageBuffer(gpu, data.length, label);
  gpu.device.queue.writeBuffer(buf, 0, hostBytes(data));
  return buf;
}

/** Creates a storage buffer of `elements` reals of `precision`. */
export function realBuffer(
  gpu: Gpu,
  precision: Precision,
  elements: number,
  label?: string,
): GPUBuffer {
  return storageBuffer(gpu, elements, label, realBytes(precision));
}

/** Creates a storage buffer holding `values` as reals of `precision` (df64: split pairs). */
export function uploadReals(
  gpu: Gpu,
  precision: Precision,
  values: ArrayLike<number>,
  label?: string,
): GPUBuffer {
  const buf = realBuffer(gpu, precision, values.length, label);
  gpu.device.queue.writeBuffer(buf, 0, encodeReals(precision, values));
  return buf;
}

/**
 * A typed array as WebGPU's `BufferSource`. The project never allocates SharedArrayBuffers, so
 * the cast only narrows TypeScript's `ArrayBufferLike` to the `ArrayBuffer` it always is.
 */
export function hostBytes(
  data: Float32Array | Uint32Array,
): Float32Array<ArrayBuffer> | Uint32Array<ArrayBuffer> {
  return data as Float32Array<ArrayBuffer> | Uint32Array<ArrayBuffer>;
}

/** Creates a uniform buffer from 4-byte words (u32 or f32 given as raw bits in a Uint32Array). */
export function uniformBuffer(
  gpu: Gpu,
  words: Uint32Array<ArrayBuffer>,
  label?: string,
): GPUBuffer {
  const size = Math.max(16, Math.ceil((words.length * 4) / 16) * 16);
  const buf = gpu.device.createBuffer({
    size,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    label,
  });
  gpu.device.queue.writeBuffer(buf, 0, words);
  return buf;
}

/** A whole-buffer view whose runs are `runStride` elements apart. */
export function view(buffer: GPUBuffer, runStride: number, offset = 0): TensorView {
  return { buffer, offset, runStride };
}

/** One buffer binding of a bind group, named for errors, with whether the shader writes it. */
export interface BufferBinding {
  binding: number;
  /** The slot (or slots, joined by "+") bound here. */
  name: string;
  writable: boolean;
  buffer: GPUBuffer;
  /** Byte offset (default 0; a multiple of minStorageBufferOffsetAlignment). */
  offset?: number;
  /** Bytes bound (default: to the end of the buffer). */
  size?: number;
}

/**
 * Throws one line naming the kernel and the bindings when one buffer is bound both writable
 * and read-only (WebGPU's usage scope forbids it in a dispatch), or to two writable bindings
 * whose ranges overlap (WebGPU forbids aliasing writable bindings, gpuweb PR 2441: Dawn
 * validates it, wgpu does not yet, and on a GPU it is undefined behaviour).
 */
export function assertNoAliasing(kernel: string, bindings: readonly BufferBinding[]): void {
  const span = (b: BufferBinding) => {
    const offset = b.offset ?? 0;
    return [offset, offset + (b.size ?? b.buffer.size - offset)];
  };
  for (const [i, a] of bindings.entries()) {
    for (const b of bindings.slice(i + 1)) {
      if (a.buffer !== b.buffer || (!a.writable && !b.writable)) continue;
      const label = a.buffer.label ? ` "${a.buffer.label}"` : "";
      const [a0, a1] = span(a), [b0, b1] = span(b);
      if (a.writable !== b.writable) {
        throw new Error(
          `${kernel}: bindings ${a.name} and ${b.name} bind buffer${label} both read-only and ` +
            `writable in one dispatch, which WebGPU forbids`,
        );
      }
      if (a0 < b1 && b0 < a1) {
        throw new Error(
          `${kernel}: writable bindings ${a.name} and ${b.name} overlap in buffer${label} ` +
            `(bytes ${a0}-${a1} and ${b0}-${b1}), which WebGPU forbids`,
        );
      }
    }
  }
}

/**
 * Builds a bind group for `pipeline`'s group 0 from `bindings`, after {@link assertNoAliasing}:
 * the one place a bind group is made, so no dispatch of `kernel` can alias.
 */
export function bindBuffers(
  gpu: Gpu,
  kernel: string,
  pipeline: GPUComputePipeline,
  bindings: readonly BufferBinding[],
): GPUBindGroup {
  assertNoAliasing(kernel, bindings);
  return gpu.scoped(() =>
    gpu.device.createBindGroup({
      label: kernel,
      layout: pipeline.getBindGroupLayout(0),
      entries: bindings.map(({ binding, buffer, offset, size }) => ({
        binding,
        resource: { buffer, offset, size },
      })),
    })
  );
}

/** Records `dispatches` in order into one compute pass of `encoder` (timed with `timestampWrites`). */
export function encodeDispatches(
  encoder: GPUCommandEncoder,
  dispatches: Dispatch[],
  timestampWrites?: GPUComputePassTimestampWrites,
): void {
  const pass = encoder.beginComputePass(timestampWrites ? { timestampWrites } : {});
  for (const d of dispatches) {
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(...d.workgroups);
  }
  pass.end();
}

/** Submits `dispatches` as one command buffer (tests and benchmarks; the trainer batches more). */
export function runDispatches(gpu: Gpu, dispatches: Dispatch[]): void {
  const encoder = gpu.device.createCommandEncoder();
  encodeDispatches(encoder, dispatches);
  gpu.submit([encoder.finish()]);
}

/** Copies `elements` f32 values starting at element `offset` of `buffer` back to the CPU. */
export async function readFloats(
  gpu: Gpu,
  buffer: GPUBuffer,
  elements = buffer.size / 4,
  offset = 0,
): Promise<Float32Array> {
  const bytes = elements * 4;
  if (bytes === 0) return new Float32Array(0); // nothing to copy (a model without BatchNorm)
  const staging = gpu.device.createBuffer({
    size: Math.max(16, Math.ceil(bytes / 16) * 16),
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = gpu.device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, offset * 4, staging, 0, bytes);
  gpu.submit([encoder.finish()]);
  await gpu.guard(staging.mapAsync(GPUMapMode.READ));
  const out = new Float32Array(staging.getMappedRange(0, bytes).slice(0));
  staging.unmap();
  staging.destroy();
  return out;
}

/**
 * Copies `elements` reals of `precision` starting at element `offset` of `buffer` back to the
 * CPU: a Float32Array for f32, float64 values (df64 pairs joined) otherwise.
 */
export async function readReals(
  gpu: Gpu,
  precision: Precision,
  buffer: GPUBuffer,
  elements = buffer.size / realBytes(precision),
  offset = 0,
): Promise<Reals> {
  const words = realBytes(precision) / 4;
  const raw = await readFloats(gpu, buffer, elements * words, offset * words);
  return decodeReals(precision, raw.buffer as ArrayBuffer);
}

/**
 * Fills `buffer` with NaN, so a kernel that leaves an output element unwritten is caught (in
 * every precision: NaN float32 words are NaN pairs and NaN float64s too).
 */
export function poison(gpu: Gpu, buffer: GPUBuffer): void {
  gpu.device.queue.writeBuffer(buffer, 0, new Float32Array(buffer.size / 4).fill(NaN));
}

/** The real fields of RunScalars, in record order (camelCase keys, snake_case in WGSL). */
const RUN_SCALAR_REALS = [
  "lrS",
  "wdS",
  "shrinkS",
  "lrO",
  "wdO",
  "shrinkO",
  "momentum",
  "eps",
  "rescale",
  "perturb",
  "epsNext",
  "cPred",
] as const satisfies readonly (keyof RunStep)[];

/** The per-run scalars of one step (see {@link RUN_SCALARS_WGSL}): the plan's reals, and A2's stream. */
export type RunScalarValues = Pick<RunStep, Exclude<typeof RUN_SCALAR_REALS[number], "cPred">> & {
  /** Predicted ||w_{r,t+1}|| / ||w_{A,t+1}|| over S; sent as 0 when absent or not finite. */
  cPred?: number;
  seed: number;
  step: number;
};

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * WGSL for the per-run scalar record that changes every step (lr, weight decay, eps, ...),
 * shared by the kernels that read it; its reals are `R`, so df64 kernels get the (hi, lo) pairs
 * of the float64 values. `eps` is BatchNorm's eps for the step's forward and backward;
 * `eps_next` is the eps for evaluating the weights after the step's update (the monitor's
 * probe): they differ for run B, whose eps follows c_t^2 (THEORY §5). `rescale` is the Lemma-2
 * factor applied to S before the step (1 = none), `perturb` the relative amplitude of the
 * per-step random perturbation of S (run A2), `seed`/`step` its random stream; `c_pred` the
 * predicted norm ratio to run A after the update (0: none), which the optimizer's angle to A
 * scales by. The CPU writes
 * one record per run ({@link packRunScalars}) with `queue.writeBuffer` before each step's submit
 * (writes are ordered with submits, so steps in flight each see their own values).
 */
export const RUN_SCALARS_WGSL = /* wgsl */ `
struct RunScalars {
  ${RUN_SCALAR_REALS.map((k) => `${snake(k)}: R`).join(", ")},
  seed: u32, step: u32,
}`;

/** Bytes of one RunScalars record: 12 reals then 2 u32 (f32: 56; df64 and f64: 104). */
export function runScalarsBytes(precision: Precision): number {
  return RUN_SCALAR_REALS.length * realBytes(precision) + 8;
}

/**
 * The RunScalars records of `runs` (one per run) as the bytes of the scalars buffer, written
 * into `out` when given (the trainer's, reused every step).
 */
export function packRunScalars(
  precision: Precision,
  runs: readonly RunScalarValues[],
  out = new Uint32Array((runs.length * runScalarsBytes(precision)) / 4),
): Uint32Array<ArrayBuffer> {
  const size = runScalarsBytes(precision), bytes = realBytes(precision);
  const reals = RUN_SCALAR_REALS.length, words = bytes / 4;
  runs.forEach((values, r) => {
    const base = (r * size) / 4;
    // The record's reals as the precision's host type (records are 8-byte aligned).
    const at = precision === "f64"
      ? new Float64Array(out.buffer, base * 4, reals)
      : new Float32Array(out.buffer, base * 4, reals * words);
    const real = (k: typeof RUN_SCALAR_REALS[number]) =>
      k === "cPred" ? (Number.isFinite(values.cPred) ? values.cPred! : 0) : values[k];
    encodeReals(precision, RUN_SCALAR_REALS.map(real), at);
    out[base + reals * words] = values.seed >>> 0;
    out[base + reals * words + 1] = values.step >>> 0;
  });
  return out;
}
