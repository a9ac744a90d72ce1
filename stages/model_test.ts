import { initParams, mlpGraph, mlpLayout, weightGroup } from "./model.ts";
import { checkScaleInvariance } from "../pipeline/pipeline.ts";
import { createRng } from "../core/prng.ts";

Deno.test("mlpLayout: S tensors first, contiguous, tagged from the layer graph", () => {
  const layout = mlpLayout({ dims: [7, 5, 4, 3], affine: true });
  const names = layout.tensors.map((t) => `${t.name}:${t.group}`);
  const expected = [
    "linear0.weight:S",
    "linear3.weight:S",
    "bn1.gamma:O",
    "bn1.beta:O",
    "bn4.gamma:O",
    "bn4.beta:O",
    "linear6.weight:O",
    "linear6.bias:O",
  ];
  if (names.join() !== expected.join()) throw new Error(`tensors ${names}`);
  if (layout.sEnd !== 7 * 5 + 5 * 4 || layout.size !== layout.sEnd + 2 * 5 + 2 * 4 + 4 * 3 + 3) {
    throw new Error(`sEnd ${layout.sEnd}, size ${layout.size}`);
  }
  let offset = 0;
  for (const t of layout.tensors) {
    if (t.offset !== offset) throw new Error(`${t.name} at ${t.offset}, expected ${offset}`);
    offset += t.size;
  }
  const graph = mlpGraph({ dims: [7, 5, 3], affine: false });
  if (weightGroup(graph, 0) !== "S" || weightGroup(graph, graph.length - 1) !== "O") {
    throw new Error("a weight before BatchNorm must be S, the head O");
  }
  if (mlpLayout({ dims: [7, 5, 3], affine: false }).tensors.some((t) => t.name.startsWith("bn"))) {
    throw new Error("non-affine BatchNorm has no parameters");
  }
});

Deno.test("initParams: PyTorch's bounds, gamma 1, beta 0, reproducible from the seed", () => {
  const layout = mlpLayout({ dims: [16, 8, 4], affine: true });
  const a = initParams(layout, 3), b = initParams(layout, 3), c = initParams(layout, 4);
  if (a.join() !== b.join() || a.join() === c.join()) throw new Error("seeding");
  for (const t of layout.tensors) {
    const v = a.subarray(t.offset, t.offset + t.size);
    const fanIn = t.name.startsWith("linear0") ? 16 : 8;
    if (t.name.endsWith("gamma") && v.some((x) => x !== 1)) throw new Error("gamma");
    if (t.name.endsWith("beta") && v.some((x) => x !== 0)) throw new Error("beta");
    if (t.name.startsWith("linear") && v.some((x) => Math.abs(x) > 1 / Math.sqrt(fanIn))) {
      throw new Error(`${t.name} out of bounds`);
    }
  }
});

Deno.test("checkScaleInvariance: passes for the real tagging, fails when an O tensor is tagged S", () => {
  const layout = mlpLayout({ dims: [12, 9, 6, 4], affine: true });
  const rng = createRng(2);
  // Random BatchNorm shifts, so that scaling a gamma is visible through the ReLU.
  const params = Float32Array.from(
    initParams(layout, 1),
    (v, i) => (i < layout.sEnd ? v : v + rng.normal()),
  );
  const x = Float32Array.from({ length: 16 * 12 }, () => rng.normal());
  checkScaleInvariance(layout, params, x, 16);
  const wrong = { ...layout, sEnd: layout.sEnd + 9 }; // bn gamma of the first layer as "S"
  let threw = false;
  try {
    checkScaleInvariance(wrong, params, x, 16);
  } catch {
    threw = true;
  }
  if (!threw) throw new Error("a wrong tagging passed the check");
});
