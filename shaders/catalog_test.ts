import { WGSL_CATALOG } from "./catalog.ts";
import { gpuTest } from "./test_gpu.ts";

/** The first non-empty line of a message (wgpu starts some with a newline). */
const firstLine = (text: string) => text.trim().split("\n")[0];

gpuTest("every catalogued kernel compiles and builds a pipeline", async (gpu) => {
  const { device } = gpu;
  const failures: string[] = [];
  for (const [name, generate] of Object.entries(WGSL_CATALOG)) {
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code: generate(), label: name });
    const info = await module.getCompilationInfo();
    for (const m of info.messages.filter((m) => m.type === "error")) {
      failures.push(`${name}: ${m.lineNum}:${m.linePos} ${firstLine(m.message)}`);
    }
    device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
    const error = await device.popErrorScope();
    if (error) failures.push(`${name}: ${firstLine(error.message)}`);
  }
  if (failures.length) throw new Error(`WGSL errors:\n${failures.join("\n")}`);
});
