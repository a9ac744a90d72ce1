import { gpuTest } from "./test_gpu.ts";
import {
  DF64_RTOL,
  df64SelfTest,
  df64SelfTestMessage,
  type Df64SelfTestResult,
} from "./df64_selftest.ts";

gpuTest(
  "df64SelfTest passes on this adapter: exact TwoSum/TwoProduct, 1e-13 elsewhere",
  async (gpu) => {
    const result = await df64SelfTest(gpu);
    if (!result.ok) throw new Error(df64SelfTestMessage(gpu.adapterDescription, result));
    console.error(`df64 self-test on ${gpu.adapterDescription}: ${JSON.stringify(result.worst)}`);
    const ops = Object.keys(result.worst);
    for (const op of ["two_sum", "two_prod", "add", "mul", "div", "sqrt", "exp"]) {
      if (!ops.includes(op)) throw new Error(`self-test skipped ${op}: ${ops}`);
    }
    if (result.worst.two_sum !== 0 || result.worst.two_prod !== 0) throw new Error("not exact");
    if (!Object.values(result.worst).every((e) => e <= DF64_RTOL)) throw new Error("over 1e-13");
    // Seeded: the same inputs, so the same worst errors, every time.
    const again = await df64SelfTest(gpu);
    if (JSON.stringify(again) !== JSON.stringify(result)) throw new Error("not reproducible");
    if (df64SelfTestMessage(gpu.adapterDescription, result) !== "") throw new Error("message");
  },
);

/** Throws unless `result` failed at `primitive`, with a one-line message naming the adapter. */
function assertFailedAt(adapter: string, result: Df64SelfTestResult, primitive: string): void {
  const message = df64SelfTestMessage(adapter, result);
  console.error(message);
  if (result.ok || result.primitive !== primitive) {
    throw new Error(`expected a failure at ${primitive}, got ${JSON.stringify(result)}`);
  }
  const start = `df64 self-test failed on ${adapter}: ${primitive} relative error `;
  if (!message.startsWith(start) || message.includes("\n")) throw new Error(message);
}

gpuTest("df64SelfTest names the primitive a broken build breaks, in one line", async (gpu) => {
  const adapter = gpu.adapterDescription;
  const bare = await df64SelfTest(gpu, { count: 1024, options: { barrier: "none" } });
  const fma = await df64SelfTest(gpu, { count: 1024, options: { twoProd: "fma" } });
  // What breaks without the guard, or with fma, is the driver's business: asserted where it
  // was measured (shaders/df64.ts), elsewhere only the message's shape.
  if (adapter.includes("llvmpipe")) {
    assertFailedAt(adapter, bare, "two_sum");
    assertFailedAt(adapter, fma, "two_prod");
  } else {
    for (const r of [bare, fma]) if (!r.ok) assertFailedAt(adapter, r, r.primitive);
  }
});
