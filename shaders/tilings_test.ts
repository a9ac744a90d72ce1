/**
 * Tests of the tilings table and variant spaces, on a dry GPU (no kernel runs): keys tell apart
 * what changes the valid variants, a space's start is the builder's default, neighbours respect
 * the device's limits and differ from their origin (a normalization's build other dispatches),
 * the table records the requests worth tuning and what it replaced. The tuner's GPU tests are
 * in stages/tuner_test.ts.
 *
 * @module
 */

import { dryGpu } from "./dry_gpu.ts";
import { type Dispatch, type Gpu, realBuffer, type TensorView } from "./gpu.ts";
import { chooseTiling, type MatmulSpec } from "./matmul.ts";
import { chooseConvTiling, type ConvProduct } from "./conv2d_tiling.ts";
import { convViews } from "./conv2d.ts";
import {
  batchNormBackwardKernel,
  type BatchNormBackwardSpec,
  batchNormForwardKernel,
  type BatchNormForwardSpec,
  SPLIT_ROWS,
} from "./batchnorm.ts";
import {
  groupNormBackwardKernel,
  type GroupNormBackwardSpec,
  groupNormForwardKernel,
  type GroupNormForwardSpec,
} from "./groupnorm.ts";
import type { GroupNormGeometry } from "../core/graph.ts";
import {
  type BatchNormRequest,
  builderTiling,
  type ConvRequest,
  type GroupNormRequest,
  type NormalizationRequest,
  tilingMismatch,
  type TilingOverride,
  Tilings,
  tuneKey,
  type TuneLimits,
  type TuneRequest,
  tuneSpace,
  worthTuning,
} from "./tilings.ts";
import type { Precision } from "./precision.ts";

const gpu = dryGpu();
const LIMITS: TuneLimits = {
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupSizeY: 256,
};

function assert(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

const view = (
  elements: number,
  offset = 0,
  runStride = elements,
  precision: Precision = "f32",
): TensorView => ({
  buffer: realBuffer(gpu, precision, offset + 3 * runStride + elements),
  offset,
  runStride,
});

function matmulSpec(
  m: number,
  n: number,
  k: number,
  o: Partial<MatmulSpec> = {},
): MatmulSpec {
  return {
    runs: 3,
    m,
    n,
    k,
    a: view(m * k),
    b: view(k * n),
    c: view(m * n),
    ...o,
  };
}

function convRequest(
  product: ConvProduct,
  shape: ConvRequest["spec"]["shape"],
  precision: Precision = "f32",
): ConvRequest {
  const x = view(shape.n * shape.h * shape.w * shape.cin);
  const w = view(shape.k * shape.k * shape.cin * shape.cout);
  const y = view(shape.n * shape.h * shape.w * shape.cout);
  const views = {
    forward: { x, w, y },
    backwardInput: { dy: y, w, dx: x },
    backwardWeight: { x, dy: y, dw: w },
  }[product];
  return { kernel: "conv", product, spec: { runs: 2, precision, shape, ...views } };
}

const SHAPES = [
  { n: 4, h: 28, w: 28, cin: 1, cout: 32, k: 3, stride: 1, pad: 1 },
  { n: 4, h: 14, w: 14, cin: 32, cout: 64, k: 3, stride: 1, pad: 1 },
  { n: 4, h: 16, w: 16, cin: 16, cout: 32, k: 1, stride: 2, pad: 0 },
  { n: 2, h: 7, w: 9, cin: 6, cout: 10, k: 3, stride: 2, pad: 1 },
];

const scalars = realBuffer(gpu, "f32", 64);

/** A BatchNorm training pass over rows × features: the forward (overridden by `o`) or backward. */
function batchNormForward(
  rows: number,
  features: number,
  o: Partial<BatchNormForwardSpec> = {},
): Extract<BatchNormRequest, { pass: "forward" }> {
  const spec: BatchNormForwardSpec = {
    runs: 3,
    rows,
    features,
    mode: "train",
    x: view(rows * features),
    y: view(rows * features),
    xhat: view(rows * features),
    invStd: view(features),
    gamma: view(features),
    beta: view(features),
    relu: true,
    scalars,
    epsField: "eps",
    running: {
      mean: view(features),
      var: view(features),
      momentum: 0.1,
      unit: view(1),
      update: true,
    },
    ...o,
  };
  return { kernel: "batchnorm", pass: "forward", spec };
}

function batchNormBackward(
  rows: number,
  features: number,
  o: Partial<BatchNormBackwardSpec> = {},
): BatchNormRequest {
  const views = normalizationBackward(rows * features, features, features, o.precision);
  const spec: BatchNormBackwardSpec = { runs: 3, rows, features, ...views, ...o };
  return { kernel: "batchnorm", pass: "backward", spec };
}

/** A backward's views: `elements` per run, gamma and its gradients `channels`, `statistics`. */
function normalizationBackward(
  elements: number,
  channels: number,
  statistics: number,
  precision: Precision = "f32",
) {
  const of = (n: number) => view(n, 0, n, precision);
  return {
    precision,
    dy: of(elements),
    xhat: of(elements),
    invStd: of(statistics),
    gamma: of(channels),
    y: of(elements),
    dx: of(elements),
    dgamma: of(channels),
    dbeta: of(channels),
  };
}

/** A GroupNorm training pass of geometry `g`: the forward (overridden by `o`) or backward. */
function groupNormForward(
  g: GroupNormGeometry,
  o: Partial<GroupNormForwardSpec> = {},
): GroupNormRequest {
  const n = g.rows * g.spatial * g.channels;
  const spec: GroupNormForwardSpec = {
    runs: 3,
    geometry: g,
    x: view(n),
    y: view(n),
    xhat: view(n),
    invStd: view(g.rows * g.groups),
    gamma: view(g.channels),
    beta: view(g.channels),
    relu: true,
    scalars,
    epsField: "eps",
    ...o,
  };
  return { kernel: "groupnorm", pass: "forward", spec };
}

function groupNormBackward(
  g: GroupNormGeometry,
  o: Partial<GroupNormBackwardSpec> = {},
): GroupNormRequest {
  const n = g.rows * g.spatial * g.channels;
  const views = normalizationBackward(n, g.channels, g.rows * g.groups);
  return { kernel: "groupnorm", pass: "backward", spec: { runs: 3, geometry: g, ...views, ...o } };
}

/**
 * GroupNorm geometries: the shipped GN-PreResNet's first stage at batch 128, positions fewer
 * than a chunk, LayerNorm (one position), and a batch whose default chunk the builder grows
 * (2100 examples of 8 chunks pass MAX_COLUMN_TERMS).
 */
const GEOMETRIES: GroupNormGeometry[] = [
  { rows: 128, spatial: 1024, channels: 16, groups: 4 },
  { rows: 6, spatial: 64, channels: 4, groups: 2 },
  { rows: 128, spatial: 1, channels: 256, groups: 1 },
  { rows: 2100, spatial: 1024, channels: 2, groups: 2 },
];

/** BatchNorm in the split design: the shipped CNN's first layer at batch 128, and just split. */
const NORMALIZATIONS: NormalizationRequest[] = [
  ...[[100352, 32], [2049, 5]].flatMap(([rows, f]) => [
    batchNormForward(rows, f),
    batchNormBackward(rows, f),
  ]),
  batchNormBackward(5000, 64, { precision: "df64", y: undefined }),
  ...GEOMETRIES.flatMap((g) => [groupNormForward(g), groupNormBackward(g)]),
];

const REQUESTS: TuneRequest[] = [
  { kernel: "matmul", spec: matmulSpec(128, 256, 784) },
  { kernel: "matmul", spec: matmulSpec(256, 10, 128, { transA: true }) },
  { kernel: "matmul", spec: matmulSpec(37, 53, 29, { transB: true, bias: view(53) }) },
  { kernel: "matmul", spec: matmulSpec(64, 64, 64, { precision: "df64" }) },
  ...SHAPES.flatMap((s) =>
    (["forward", "backwardInput", "backwardWeight"] as const).map((p) => convRequest(p, s))
  ),
  convRequest("backwardWeight", SHAPES[1], "df64"),
  ...NORMALIZATIONS,
];

/**
 * What a normalization's builder makes of `tiling` on a dry GPU that records it: every
 * dispatch's WGSL, uniform words, buffers (the scratch) and workgroup counts.
 */
function built(r: NormalizationRequest, tiling?: TilingOverride): string {
  const dry = dryGpu(), record: unknown[] = [];
  const recording: Gpu = {
    ...dry,
    device: {
      ...dry.device,
      createBuffer: (d: GPUBufferDescriptor) => (record.push(d.size), dry.device.createBuffer(d)),
      queue: {
        writeBuffer: (_b: GPUBuffer, _o: number, data: Uint32Array) => record.push([...data]),
      },
    } as unknown as GPUDevice,
    pipeline: (code: string) => (record.push(code), dry.pipeline(code)),
  };
  const ds: Dispatch[] = r.kernel === "batchnorm"
    ? r.pass === "forward"
      ? batchNormForwardKernel(recording, r.spec, tiling)
      : batchNormBackwardKernel(recording, r.spec, tiling)
    : r.pass === "forward"
    ? groupNormForwardKernel(recording, r.spec, tiling)
    : groupNormBackwardKernel(recording, r.spec, tiling);
  return JSON.stringify([record, ds.map((d) => d.workgroups)]);
}

/**
 * What the builder makes of `r` under `override`: its tiling (matmul, convolution), or its
 * dispatches (a normalization: {@link built}).
 */
function chosen(r: TuneRequest, override: TilingOverride = {}): string {
  if (r.kernel === "matmul") return JSON.stringify(chooseTiling(r.spec, override));
  if (r.kernel !== "conv") return built(r, override);
  const { product, spec } = r;
  return JSON.stringify(chooseConvTiling(
    product,
    spec.shape,
    spec.runs,
    convViews(product, spec),
    override,
    spec.precision,
  ));
}

Deno.test("a space's start, given as an override, is exactly the builder's default tiling", () => {
  for (const r of REQUESTS) {
    const start = builderTiling(tuneSpace(r, LIMITS).start);
    const [want, got] = [chosen(r), chosen(r, start)];
    assert(got === want, `${tuneKey(r)}: ${JSON.stringify(start)} is not the default`);
  }
});

Deno.test("neighbours differ from their origin, are distinct and respect the limits", () => {
  const small: TuneLimits = { ...LIMITS, maxComputeInvocationsPerWorkgroup: 64 };
  for (const r of REQUESTS) {
    for (const limits of [LIMITS, small]) {
      const space = tuneSpace(r, limits);
      // Two steps out from the start.
      const first = space.neighbours(space.start);
      assert(first.length > 0, `${tuneKey(r)}: the default has no neighbours`);
      for (const t of [space.start, ...(space.starts ?? []), ...first]) {
        const keys = space.neighbours(t).map(space.key);
        assert(new Set(keys).size === keys.length, `${tuneKey(r)}: duplicate neighbours`);
        assert(!keys.includes(space.key(t)), `${tuneKey(r)}: a variant is its own neighbour`);
        for (const v of space.neighbours(t)) {
          const invocations = r.kernel === "matmul"
            ? (v.wgx as number) * (v.wgy as number)
            : (v.wg ?? v.workgroup) as number;
          assert(
            invocations <= limits.maxComputeInvocationsPerWorkgroup,
            `${tuneKey(r)}: ${space.key(v)} has ${invocations} invocations`,
          );
          const precision = r.spec.precision ?? "f32";
          assert(precision === "f32" || !v.vec, `${tuneKey(r)}: vec4 in ${precision}`);
          if (r.kernel === "conv" && r.product === "backwardWeight") {
            const { tm, tc } = v as Record<string, number>;
            assert(r.spec.shape.cin % tc === 0 && tm % tc === 0, `${space.key(v)}: bad tc`);
          }
          // A normalization's neighbour is another variant: its builder makes other dispatches.
          if (r.kernel === "batchnorm" || r.kernel === "groupnorm") {
            assert(
              chosen(r, v) !== chosen(r, t),
              `${tuneKey(r)}: ${space.key(v)} builds as ${space.key(t)}`,
            );
          }
        }
      }
    }
  }
});

Deno.test("every variant a space offers is a tiling of its kernel; a stray field or type is named", () => {
  for (const r of REQUESTS) {
    const space = tuneSpace(r, LIMITS);
    for (const t of [space.start, ...(space.starts ?? []), ...space.neighbours(space.start)]) {
      const why = tilingMismatch(r, builderTiling(t));
      assert(why === undefined, `${tuneKey(r)}: ${space.key(t)}: ${why}`);
    }
    const [field, value] = Object.entries(builderTiling(space.start))[0];
    const wrong = tilingMismatch(r, { [field]: typeof value === "number" ? true : 4 });
    assert(wrong === `${field} is a ${typeof value}`, `${tuneKey(r)}: ${wrong}`);
    const stray = tilingMismatch(r, { [field]: value, tiles: 4 });
    assert(!!stray?.startsWith(`tiles is no field of a ${r.kernel} tiling (`), `${stray}`);
  }
});

Deno.test("keys tell apart product, shape, runs, precision and vec4 alignment", () => {
  const base = matmulSpec(128, 256, 784);
  const keys = [
    base,
    { ...base, transA: true },
    { ...base, bias: view(256) },
    { ...base, m: 64 },
    { ...base, runs: 1 },
    { ...base, precision: "df64" as const },
    { ...base, b: view(784 * 256, 1) },
    { ...base, c: view(128 * 256, 0, 128 * 256 + 2) },
  ].map((spec) => tuneKey({ kernel: "matmul", spec }));
  assert(new Set(keys).size === keys.length, `keys collide: ${keys.join(" | ")}`);
  assert(
    tuneKey({ kernel: "matmul", spec: { ...base, a: view(128 * 784) } }) === keys[0],
    "views laid out alike must share a key",
  );
  const conv = SHAPES.flatMap((s) =>
    (["forward", "backwardInput", "backwardWeight"] as const).map((p) => tuneKey(convRequest(p, s)))
  );
  assert(new Set(conv).size === conv.length, "conv keys collide");
});

Deno.test("normalization keys tell apart pass, shape, runs, precision and every variant flag", () => {
  const [rows, f, g] = [5000, 32, GEOMETRIES[0]];
  const running = batchNormForward(rows, f).spec.running!;
  const bn = (o: Partial<BatchNormForwardSpec>) => tuneKey(batchNormForward(rows, f, o));
  const bnBack = (o: Partial<BatchNormBackwardSpec>) => tuneKey(batchNormBackward(rows, f, o));
  const gn = (o: Partial<GroupNormForwardSpec>) => tuneKey(groupNormForward(g, o));
  const gnBack = (o: Partial<GroupNormBackwardSpec>) => tuneKey(groupNormBackward(g, o));
  const unsaved = { xhat: undefined, invStd: undefined };
  const plain = { gamma: undefined, beta: undefined };
  const keys = [
    bn({}),
    bn({ relu: false }),
    bn(plain),
    bn(unsaved),
    bn({ epsField: "eps_next" }),
    bn({ running: undefined }),
    bn({ running: { ...running, update: false } }),
    bn({ running: { ...running, unit: undefined } }),
    bn({ ...unsaved, mode: "eval", running: { ...running, update: false } }),
    bn({ runs: 1 }),
    bn({ precision: "df64" }),
    tuneKey(batchNormForward(rows + 1, f)),
    tuneKey(batchNormForward(rows, f + 1)),
    ...[{}, { y: undefined }, { gamma: undefined }, { dgamma: undefined }, { dbeta: undefined }]
      .map(bnBack),
    gn({}),
    gn({ relu: false }),
    gn(plain),
    gn(unsaved),
    gn({ epsField: "eps_next" }),
    gn({ runs: 1 }),
    gn({ precision: "df64" }),
    ...(["rows", "spatial", "channels", "groups"] as const).map((k) =>
      gn({ geometry: { ...g, [k]: g[k] * 2 } })
    ),
    ...[{}, { y: undefined }, { gamma: undefined }, { dgamma: undefined }, { dbeta: undefined }]
      .map(gnBack),
  ];
  assert(new Set(keys).size === keys.length, `keys collide: ${keys.join(" | ")}`);
  // No vec4 loads: the views' places do not matter; nor does the momentum (a uniform).
  assert(bn({ x: view(rows * f, 1) }) === keys[0], "a view's place in the key");
  assert(bn({ running: { ...running, momentum: 0.3 } }) === keys[0], "the momentum in the key");
});

Deno.test("the table records a normalization's training pass only, BatchNorm's only split", () => {
  const [rows, f, g] = [SPLIT_ROWS + 1, 8, GEOMETRIES[1]];
  const training = [
    batchNormForward(rows, f),
    batchNormBackward(rows, f),
    groupNormForward(g),
    groupNormBackward(g),
  ];
  // The probe's forwards (nothing saved, no running update), BatchNorm's whole design.
  const probe = { xhat: undefined, invStd: undefined };
  const untuned = [
    batchNormForward(rows, f, { ...probe, running: undefined }),
    batchNormForward(SPLIT_ROWS, f),
    batchNormBackward(SPLIT_ROWS, f),
    groupNormForward(g, probe),
  ];
  const chosen = { chunkRows: 256, workgroup: 64 };
  const table = new Tilings(new Map([[tuneKey(training[0]), chosen]]));
  const ask = (r: BatchNormRequest | GroupNormRequest) =>
    r.kernel === "batchnorm" ? table.batchNorm(r) : table.groupNorm(r);
  assert(JSON.stringify(ask(training[0])) === JSON.stringify(chosen), "chosen tiling not returned");
  for (const r of [...training.slice(1), ...untuned]) {
    assert(ask(r) === undefined, `${tuneKey(r)}: not the default`);
  }
  const recorded = [...table.requests.keys()];
  assert(recorded.join() === training.map(tuneKey).join(), `requests: ${recorded.join("; ")}`);
  assert(training.every(worthTuning) && !untuned.some(worthTuning), "worthTuning disagrees");
});

Deno.test("the table answers with the chosen tiling, records every request and what it replaced", () => {
  const spec = matmulSpec(128, 256, 784), other = matmulSpec(128, 256, 256);
  const key = tuneKey({ kernel: "matmul", spec });
  const table = new Tilings(new Map([[key, { tm: 8 }]]));
  assert(table.matmul(spec)?.tm === 8, "chosen tiling not returned");
  assert(table.matmul(other) === undefined, "an unknown shape must get the default");
  const r = convRequest("forward", SHAPES[0]);
  assert(table.conv(r.product, r.spec) === undefined, "conv default");
  assert(table.requests.size === 3, `requests: ${[...table.requests.keys()]}`);
  assert([...table.used].join() === key, `used: ${[...table.used]}`);
  const defaults = new Tilings(new Map([[key, {}]]));
  defaults.matmul(spec);
  assert(defaults.used.size === 0, "a cached default replaces nothing");
});
