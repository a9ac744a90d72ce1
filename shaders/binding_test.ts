/**
 * The aliasing rule, refused where bind groups are built on every implementation: two writable
 * bindings that overlap, a buffer bound read-only and writable, a read-only slot on a written
 * buffer; and what it allows: disjoint writable ranges, and `read_write` slots on one buffer,
 * bound once together.
 */

import { assertThrows, freshRng } from "../core/test_util.ts";
import { KernelInterface } from "./binding.ts";
import {
  bindBuffers,
  type BufferBinding,
  readFloats,
  runDispatches,
  storageBuffer,
  uploadBuffer,
} from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";

const TWO_SLOTS = /* wgsl */ `@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> b: array<f32>;
@compute @workgroup_size(1) fn main() { a[0] = b[0]; }`;

/** Asserts `fn` throws one line containing every fragment. */
function assertOneLine(fn: () => unknown, ...fragments: string[]): void {
  let message = "";
  try {
    fn();
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message || message.includes("\n") || fragments.some((f) => !message.includes(f))) {
    throw new Error(`expected one line with ${fragments.join(", ")}; got ${message || "none"}`);
  }
}

gpuTest("bindBuffers refuses two writable overlapping bindings with one line", (gpu) => {
  const pipeline = gpu.pipeline(TWO_SLOTS);
  const buffer = storageBuffer(gpu, 1024, "shared");
  const at = (name: string, offset: number, size: number): BufferBinding => ({
    binding: name === "a" ? 0 : 1,
    name,
    writable: true,
    buffer,
    offset,
    size,
  });
  assertOneLine(
    () => bindBuffers(gpu, "copy", pipeline, [at("a", 0, 512), at("b", 256, 512)]),
    "copy",
    "writable bindings a and b overlap",
    `"shared"`,
  );
  // Disjoint writable ranges of one buffer are allowed.
  bindBuffers(gpu, "copy", pipeline, [at("a", 0, 256), at("b", 256, 256)]);
});

gpuTest("bindBuffers refuses one buffer bound read-only and writable", (gpu) => {
  const pipeline = gpu.pipeline(TWO_SLOTS);
  const buffer = storageBuffer(gpu, 1024, "mixed");
  assertOneLine(
    () =>
      bindBuffers(gpu, "copy", pipeline, [
        { binding: 0, name: "a", writable: true, buffer, offset: 0, size: 256 },
        { binding: 1, name: "b", writable: false, buffer, offset: 512, size: 256 },
      ]),
    "copy",
    "a and b",
    "both read-only and writable",
  );
});

/** out = a + b over `count` elements, `a` read-only: it may not share out's buffer. */
function addInterface(aAccess: "read" | "read_write") {
  return new KernelInterface("test add", {
    dims: ["count"],
    slots: [{ name: "a", access: aAccess }, { name: "out", access: "read_write" }],
  });
}

function addCode(iface: KernelInterface): string {
  return `${iface.wgsl}
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < u.count) { out[at_out(0u, g.x)] = a[at_a(0u, g.x)] + 1.0; }
}`;
}

gpuTest("a read-only slot on a buffer a written slot views is refused by name", (gpu) => {
  const iface = addInterface("read");
  const buffer = storageBuffer(gpu, 256, "acts");
  const view = (offset: number) => ({ view: { buffer, offset, runStride: 0 }, length: 64 });
  assertThrows(
    () =>
      iface.dispatch(gpu, {
        code: addCode(iface),
        dims: { count: 64 },
        views: { a: view(0), out: view(128) },
        runs: 1,
        workgroups: [1, 1, 1],
      }),
    "test add: read-only slot a and written slot out view one buffer",
  );
});

gpuTest("read_write slots on one buffer are bound once: in place and side by side", async (gpu) => {
  const rng = freshRng("binding merge");
  const iface = addInterface("read_write");
  const host = Float32Array.from({ length: 256 }, () => rng.uniform(-1, 1));
  const buffer = uploadBuffer(gpu, host, "acts");
  const view = (offset: number) => ({ view: { buffer, offset, runStride: 0 }, length: 64 });
  const add = (a: number, out: number) =>
    iface.dispatch(gpu, {
      code: addCode(iface),
      dims: { count: 64 },
      views: { a: view(a), out: view(out) },
      runs: 1,
      workgroups: [1, 1, 1],
    });
  // Elements 0..63 in place (+1), then 64..127 into 192..255 (+1): disjoint, one binding.
  runDispatches(gpu, [add(0, 0), add(64, 192)]);
  const got = await readFloats(gpu, buffer, 256);
  for (let i = 0; i < 256; i++) {
    const want = i < 64
      ? Math.fround(host[i] + 1)
      : i >= 192
      ? Math.fround(host[i - 128] + 1)
      : host[i];
    if (got[i] !== want) throw new Error(`element ${i}: ${got[i]}, expected ${want}`);
  }
});
