import { gpuTest } from "./test_gpu.ts";
import { realSelfTest, realSelfTestMessage } from "./precision_selftest.ts";

gpuTest("the df64 self-test of the kernels' r_* functions passes on this adapter", async (gpu) => {
  const result = await realSelfTest(gpu, "df64");
  if (!result.ok) throw new Error(realSelfTestMessage(gpu.adapterDescription, "df64", result));
  console.error(
    Object.entries(result.worst).map(([op, e]) => `${op} ${e.toExponential(1)}`).join(", "),
  );
});

gpuTest("the self-test fails float32 arithmetic with one line naming the op", async (gpu) => {
  const result = await realSelfTest(gpu, "f32");
  const line = realSelfTestMessage("test adapter", "f32", result);
  console.error(line);
  if (result.ok || result.op !== "add") throw new Error(`expected add to fail: ${line}`);
  if (
    !/^f32 self-test failed on test adapter: add relative error [\d.e-]+ \(limit 1e-13\)/.test(line)
  ) {
    throw new Error(line);
  }
});

gpuTest(
  "an op the adapter cannot compile fails the self-test with the compiler's message",
  async (gpu) => {
    // f64 without the shader-f64 feature does not compile; an adapter that has it must pass.
    const result = await realSelfTest(gpu, "f64");
    const line = realSelfTestMessage(gpu.adapterDescription, "f64", result);
    console.error(line || "f64 passed");
    if (gpu.f64 ? !result.ok : result.ok || result.compileError === undefined) {
      throw new Error(
        line,
      );
    }
  },
);
