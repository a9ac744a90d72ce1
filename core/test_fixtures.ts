/**
 * Fixtures shared by the tests: a run plan's spec with overridable fields, and model layouts
 * by their sizes.
 *
 * @module
 */

import type { ModelLayout } from "./graph.ts";
import { buildModel } from "./models.ts";
import type { RunsSpec } from "./runs.ts";
import { constantSchedule } from "./schedule.ts";

/**
 * A runs spec: runs A, B, exact recursion, constant lr 0.1 for 10 steps, wd 5e-3, momentum
 * 0.9, group O at lr 0.05 and wd 1e-4, BatchNorm eps 1e-5 scaled, coupled weight decay;
 * `overrides` replace fields.
 */
export function testRunsSpec(overrides: Partial<RunsSpec> = {}): RunsSpec {
  return {
    runs: ["A", "B"],
    explr: "exact",
    schedule: constantSchedule(0.1, 10),
    wd: 5e-3,
    momentum: 0.9,
    lrO: 0.05,
    wdO: 1e-4,
    bnEps: 1e-5,
    bnEpsMode: "scaled",
    wdStyle: "coupled",
    ...overrides,
  };
}

/** The MLP layout of `dims` = [input, hidden..., classes]. */
export function mlpLayout(dims: number[], affine = true): ModelLayout {
  return buildModel(
    { model: "mlp", hidden: dims.slice(1, -1) },
    { inputShape: [dims[0]], classes: dims[dims.length - 1], affine },
  );
}

/** A small CNN (the `cnn` model) on `size`×`size`×`channels` images. */
export function cnnLayout(size: number, channels: number, classes: number): ModelLayout {
  return buildModel({ model: "cnn" }, {
    inputShape: [size, size, channels],
    classes,
    affine: true,
  });
}

/** A pre-activation ResNet of `depth` and base `width` on `size`×`size`×`channels` images. */
export function preresnetLayout(
  depth: number,
  width: number,
  size: number,
  channels: number,
  classes: number,
): ModelLayout {
  return buildModel({ model: "preresnet", depth, width }, {
    inputShape: [size, size, channels],
    classes,
    affine: true,
  });
}
