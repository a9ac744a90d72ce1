import { buildModel } from "../core/models.ts";
import { initParams } from "../core/init.ts";
import { decodeSafetensors, encodeSafetensors, type SafeTensor } from "../core/safetensors.ts";
import { assertThrows } from "../core/test_util.ts";
import { loadWeights, saveWeights } from "./weights.ts";

const layout = buildModel({ model: "preresnet", depth: 8, width: 4 }, {
  inputShape: [8, 8, 3],
  classes: 10,
  affine: true,
});
const params = Float32Array.from(initParams(layout, 7));

Deno.test("weights: --save-init's file loads back bit for bit; conv weights in PyTorch's layout", async () => {
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  await saveWeights(path, layout, params);
  const loaded = await loadWeights(path, layout);
  if (!loaded.every((v, i) => Object.is(v, params[i]))) throw new Error("weights changed");
  const { tensors } = decodeSafetensors(await Deno.readFile(path), path);
  // stem: trainer [(kh*3 + kw)*3 + ci, co] -> PyTorch [co, ci, kh, kw].
  const stem = tensors.get("A/stem.weight")!,
    t = layout.tensors.find((t) => t.name === "stem.weight")!;
  if (stem.shape.join() !== "4,3,3,3") throw new Error(`stem shape ${stem.shape}`);
  for (const [co, ci, kh, kw] of [[0, 0, 0, 0], [3, 2, 1, 2], [1, 1, 2, 0]]) {
    const torch = stem.data[((co * 3 + ci) * 3 + kh) * 3 + kw];
    const ours = params[t.offset + ((kh * 3 + kw) * 3 + ci) * 4 + co];
    if (torch !== ours) throw new Error(`stem[${co},${ci},${kh},${kw}]: ${torch} vs ${ours}`);
  }
  await Deno.remove(path);
});

Deno.test("weights: a PyTorch state_dict (no run prefix, float64, BatchNorm buffers) loads; a wrong one is one line", async () => {
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  await saveWeights(path, layout, params);
  const { tensors } = decodeSafetensors(await Deno.readFile(path), path);
  const torch = new Map<string, SafeTensor>();
  for (const [name, t] of tensors) {
    torch.set(name.slice(2), {
      dtype: "F64",
      shape: t.shape,
      data: Float64Array.from(t.data as Float32Array),
    });
  }
  torch.set("bn_final.running_mean", { dtype: "F32", shape: [16], data: new Float32Array(16) });
  torch.set("bn_final.num_batches_tracked", {
    dtype: "I64",
    shape: [],
    data: new BigInt64Array(1),
  });
  await Deno.writeFile(path, encodeSafetensors(torch, {}));
  const loaded = await loadWeights(path, layout);
  if (!loaded.every((v, i) => Object.is(v, params[i]))) throw new Error("weights changed");

  const extra = new Map(torch).set("fc9.weight", {
    dtype: "F32",
    shape: [1],
    data: new Float32Array(1),
  });
  await Deno.writeFile(path, encodeSafetensors(extra, {}));
  await assertThrowsAsync(() => loadWeights(path, layout), "fc9.weight is not a parameter");
  const missing = new Map(torch);
  missing.delete("head.bias");
  await Deno.writeFile(path, encodeSafetensors(missing, {}));
  await assertThrowsAsync(() => loadWeights(path, layout), "head.bias is missing");
  await Deno.writeFile(path, new Uint8Array(3));
  await assertThrowsAsync(() => loadWeights(path, layout), "not a safetensors file");
  await Deno.remove(path);
});

async function assertThrowsAsync(fn: () => Promise<unknown>, fragment: string): Promise<void> {
  let error: unknown;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  assertThrows(() => {
    if (error) throw error;
  }, fragment);
}
