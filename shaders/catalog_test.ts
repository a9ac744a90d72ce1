import { KERNELS, WGSL_CATALOG } from "./catalog.ts";
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

gpuTest(
  "every kernel's f64 variant gets through the WGSL front end (only the missing shader-f64 stops it here)",
  async (gpu) => {
    const { device } = gpu;
    const failures: string[] = [];
    for (const [name, generate] of KERNELS) {
      device.pushErrorScope("validation");
      const module = device.createShaderModule({ code: generate("f64"), label: name });
      const info = await module.getCompilationInfo();
      const error = await device.popErrorScope();
      // The compilation info and the error scope report the same error: distinct lines only.
      const messages = [
        ...new Set([
          ...info.messages.filter((m) => m.type === "error").map((m) => firstLine(m.message)),
          ...(error ? [firstLine(error.message)] : []),
        ]),
      ];
      // Without the feature naga parses and types the module, then its validator refuses the
      // f64 type (R) first; a parse or type error of the template would show up instead. Tint
      // (Dawn) has no f64 type at all (shader-f64 is a wgpu extension, not WGSL), so it stops at
      // `alias R = f64;`: only naga checks the rest of the f64 templates.
      const refused = gpu.implementation === "dawn"
        ? messages.length > 0 && messages.every((m) => m.endsWith("unresolved type 'f64'"))
        : messages.join("\n") === "Shader validation error: Type [0] 'R' is invalid";
      if (gpu.f64 ? messages.length > 0 : !refused) {
        failures.push(`${name}: ${messages.join("; ") || "compiled"}`);
      }
    }
    if (failures.length) throw new Error(`f64 WGSL:\n${failures.join("\n")}`);
  },
);
