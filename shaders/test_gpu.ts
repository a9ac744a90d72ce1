/**
 * The one way GPU tests register: {@link gpuTest} runs `fn` with the process's GPU. The
 * sanitizers are off because the GPU (device, pipeline cache, pending maps) deliberately
 * outlives every test.
 *
 * @module
 */

import { acquireGpu, type Gpu } from "./gpu.ts";

/** Registers a Deno test that acquires the process-wide GPU and passes it to `fn`. */
export function gpuTest(name: string, fn: (gpu: Gpu) => Promise<void> | void): void {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await fn(await acquireGpu());
    },
  });
}
