import { checkScaleInvariance } from "./invariance.ts";
import { initParams } from "../core/init.ts";
import type { ModelLayout } from "../core/graph.ts";
import { createRng } from "../core/prng.ts";
import { cnnLayout, mlpLayout, preresnetLayout } from "../core/test_fixtures.ts";
import { assertThrows } from "../core/test_util.ts";

/** Passes with the derived S; fails when S is widened by the next (O) tensor. */
function check(layout: ModelLayout, rows: number) {
  const rng = createRng(2);
  // Random BatchNorm shifts, so that scaling a gamma is visible through the ReLU.
  const params = Float64Array.from(
    initParams(layout, 1),
    (v, i) => (i < layout.sEnd ? v : v + rng.normal()),
  );
  const x = Float64Array.from({ length: rows * layout.inputSize }, () => rng.normal());
  checkScaleInvariance(layout, params, x, rows);
  const next = layout.tensors.find((t) => t.group === "O")!;
  const wrong = { ...layout, sEnd: layout.sEnd + next.size };
  assertThrows(() => checkScaleInvariance(wrong, params, x, rows), "scale-invariance check");
  return { params, x };
}

Deno.test("checkScaleInvariance: mlp and cnn pass, a wrongly tagged O tensor fails", () => {
  check(mlpLayout([12, 9, 6, 4]), 16);
  check(cnnLayout(9, 2, 3), 3);
});

Deno.test("checkScaleInvariance: preresnet passes for all of S; one stream writer alone fails", () => {
  const layout = preresnetLayout(8, 4, 8, 3, 5);
  const { params, x } = check(layout, 3);
  // The stream writers are invariant jointly, not one by one: S = the stem alone fails.
  const stem = layout.sTensors.find((t) => t.name === "stem.weight")!;
  if (stem.offset !== 0) throw new Error("the stem is the first S tensor");
  const stemOnly = { ...layout, sEnd: stem.size };
  assertThrows(() => checkScaleInvariance(stemOnly, params, x, 3), "scale-invariance check");
});
