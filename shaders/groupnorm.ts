/**
 * GroupNorm (LayerNorm = one group) over a run-stacked [rows, spatial, channels] activation (NHWC
 * per example; element (n, s, c) at (n*spatial + s)*channels + c): forward and backward,
 * optionally fused with a following ReLU (`relu`: the forward writes relu(y); the backward masks
 * dy where that output is not positive). Statistics are per example and group of
 * cg = channels/groups consecutive channels over every position (L = spatial·cg elements), so
 * there is no eval mode. References: `reference/groupnorm.ts`.
 *
 * Design: BatchNorm's split design (`batchnorm.ts`) with chunks that never straddle two examples.
 * Three dispatches each way, with no barriers:
 * - `partials`: one thread per (example n, chunk q of `chunkPositions` positions, channel c):
 *   forward, the chunk's mean and sum of squared deviations (two passes, the second from
 *   cache); backward, its Σdy and Σdy·xhat;
 * - `stats`: one thread per (example, group) combines its cg·chunks partials in a fixed order:
 *   forward, the mean (Σ count·mean / L), then M2 = Σ M2_i + count_i·(mean_i − mean)² (deviations
 *   from the group mean: no cancellation), hence 1/std; backward, Σdh = Σ gamma[c]·Σdy and
 *   Σdh·xhat. With dgamma/dbeta, further threads, one per channel, add that channel's partials
 *   over every example and chunk (dgamma = ΣΣdy·xhat, dbeta = ΣΣdy);
 * - `apply`: one thread per (example, chunk, channel) loads its statistics, gamma and beta once
 *   and normalises (forward) or forms dx (backward) for the chunk's positions.
 * Reason: on lavapipe every barrier step is paid by the whole workgroup; one 64-lane workgroup
 * per (example, group) with workgroup sums took 2-4 times as long on image shapes, up to 80
 * times with many small groups; this design costs what BatchNorm does (timings:
 * docs/results/kernel-variants.md, "groupnorm"). Chunked threads keep loops short (lavapipe
 * stopped writing from invocations that looped ~65k times): a partials or apply thread loops
 * over at most `chunk` positions, a stats thread over cg·chunks or rows·chunks partials (the
 * chunk grows past `chunkPositions`, doubling, only to keep rows·chunks <= MAX_COLUMN_TERMS;
 * more than MAX_COLUMN_TERMS rows are refused, whatever the chunk).
 *
 * Tiling ({@link GroupNormTiling}): a parameter of the kernel builders that a tuner may change
 * per shape: `workgroup` threads per workgroup of every dispatch, `chunkPositions` positions per
 * chunk. Default ({@link DEFAULT_GROUPNORM_TILING}) 128 positions and 64 threads, BatchNorm's
 * (`batchnorm.ts`), for the same reason: chunks of 64 to 512 were within lavapipe's noise there.
 *
 * Every statistic and sum is R (`precision.ts`) and the stats sums are blocked (SUM_BLOCK terms
 * into a partial, then the total), so df64 keeps ~1e-14. Each tensor is a whole-buffer
 * `read_write` slot addressed through `at_<slot>(r, i)`, so views may share a buffer (WebGPU
 * forbids one buffer bound read-only and writable in one dispatch); only RunScalars is read-only.
 * The scratch (partials, statistics) is allocated by the kernel builders. In place: y may be x's
 * view and dx may be dy's (`apply` reads each element in the thread that then writes it, after
 * `partials` has read everything).
 *
 * @module
 */

import type { GroupNormGeometry } from "../core/graph.ts";
import { assertCounts, ceilDiv, foldedGrid, KernelInterface } from "./binding.ts";
import { type Dispatch, type Gpu, realBuffer, type TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";
import {
  backwardSlots,
  forwardSlots,
  type NormalizationBackwardViews,
  type NormalizationForwardViews,
  normalizationTiling,
} from "./normalization.ts";

/** How GroupNorm's dispatches block their work. */
export interface GroupNormTiling {
  /**
   * Positions per chunk of the partials and apply dispatches (grown, doubling, where
   * rows·chunks would pass MAX_COLUMN_TERMS).
   */
  chunkPositions: number;
  /** Threads per workgroup of every dispatch; a power of two, at most 256. */
  workgroup: number;
}
/** The hand-picked tiling (BatchNorm's, the fastest measured there on lavapipe). */
export const DEFAULT_GROUPNORM_TILING: GroupNormTiling = { chunkPositions: 128, workgroup: 64 };
/** Most partials a dgamma/dbeta thread of `stats` adds (rows·chunks). */
export const MAX_COLUMN_TERMS = 16384;
/** Terms added into a partial before it joins the total (`stats`): bounds the error growth. */
const SUM_BLOCK = 32;

/** A GroupNorm dispatch: one of the three stages of either pass. */
export type GroupNormStage = "partials" | "stats" | "apply";

/** The compile-time choices of one GroupNorm kernel; every flag is a branch of one template. */
export type GroupNormVariant =
  | {
    pass: "forward";
    stage: GroupNormStage;
    /** gamma/beta present. */
    affine: boolean;
    /** Write xhat and invStd for the backward. */
    save: boolean;
    /** Write relu(y) (GroupNorm fused with the ReLU that follows it). */
    relu: boolean;
    /** The RunScalars field holding this forward's eps. */
    epsField: "eps" | "eps_next";
  }
  | {
    pass: "backward";
    stage: GroupNormStage;
    /** dh = dy·gamma. */
    gamma: boolean;
    dgamma: boolean;
    dbeta: boolean;
    /** dy is the gradient of relu(y): masked where the forward's fused output `y` is not > 0. */
    relu: boolean;
  };

/**
 * Inputs and outputs of a GroupNorm forward; see the module doc and reference/groupnorm.ts. x, y
 * and xhat are [rows*spatial*channels] (y may be x's view: in place), invStd [rows*groups], gamma
 * and beta [channels].
 */
export interface GroupNormForwardSpec extends NormalizationForwardViews {
  geometry: GroupNormGeometry;
}

/** Inputs and outputs of the GroupNorm backward (shapes as the forward's; dx may be dy's view). */
export interface GroupNormBackwardSpec extends NormalizationBackwardViews {
  geometry: GroupNormGeometry;
}

type Forward = Extract<GroupNormVariant, { pass: "forward" }>;
type Backward = Extract<GroupNormVariant, { pass: "backward" }>;

/** Tensor bindings of a variant, in binding order (after the uniform and the scalars). */
function tensorSlots(v: GroupNormVariant): string[] {
  const opt = (on: boolean, ...names: string[]) => (on ? names : []);
  if (v.pass === "forward") {
    switch (v.stage) {
      case "partials":
        return ["x", "part"];
      case "stats":
        return ["part", "stat", ...opt(v.save, "inv_std")];
      case "apply":
        return ["x", "y", ...opt(v.save, "xhat"), "stat", ...opt(v.affine, "gamma", "beta")];
    }
  }
  switch (v.stage) {
    case "partials":
      return ["dy", "xhat", ...opt(v.relu, "y"), "part"];
    case "stats":
      return [
        "part",
        "stat",
        ...opt(v.gamma, "gamma"),
        ...opt(v.dgamma, "dgamma"),
        ...opt(v.dbeta, "dbeta"),
      ];
    case "apply":
      return ["dy", "xhat", "dx", ...opt(v.relu, "y"), "stat", "inv_std", ...opt(v.gamma, "gamma")];
  }
}

/** Whether a variant's dispatch reads eps from RunScalars. */
function readsEps(v: GroupNormVariant): boolean {
  return v.pass === "forward" && v.stage === "stats";
}

/** Whether a backward `stats` dispatch also sums dgamma or dbeta (one thread per channel). */
function columns(v: GroupNormVariant): boolean {
  return v.pass === "backward" && (v.dgamma || v.dbeta);
}

const interfaces = new Map<string, KernelInterface>();

/** The (cached) interface of a variant in `precision`: every slot `read_write` (of R). */
function groupNormInterface(v: GroupNormVariant, precision: Precision): KernelInterface {
  const slots = tensorSlots(v);
  const key = `${precision} ${v.pass} ${v.stage} ${slots.join(" ")}`;
  let i = interfaces.get(key);
  if (!i) {
    i = new KernelInterface(`groupnorm ${v.pass} ${v.stage}`, {
      precision,
      dims: ["rows", "spatial", "channels", "groups", "cg", "len", "chunk", "chunks"],
      slots: slots.map((name) => ({ name, access: "read_write" })),
      runScalars: readsEps(v),
    });
    interfaces.set(key, i);
  }
  return i;
}

/**
 * Prelude of `partials` and `apply`: thread t = (n·chunks + q)·channels + c; positions
 * [s0, s1); w = n·groups + group of c; `np` partials per term.
 */
const CHUNK_THREAD = `  let nq = t / f;
  let c = t - nq * f;
  let n = nq / u.chunks;
  let q = nq - n * u.chunks;
  let s0 = q * u.chunk;
  let s1 = min(s0 + u.chunk, u.spatial);
  let w = n * u.groups + c / u.cg;`;

/** WGSL running `body` for each position of the thread's chunk: element `k`. */
function positions(body: string): string {
  return `for (var s = s0; s < s1; s++) {
    let k = (n * u.spatial + s) * f + c;
    ${body}
  }`;
}

/** dy at element k, masked by the fused ReLU's output. */
function dyAt(relu: boolean, k: string): string {
  return relu
    ? `select(R(), dy[at_dy(r, ${k})], r_hi(y[at_y(r, ${k})]) > 0.0)`
    : `dy[at_dy(r, ${k})]`;
}

/**
 * WGSL adding `terms` (in_<t> += ... in `body`, term index `i`) over i in [0, count) in blocks
 * of SUM_BLOCK (partials, then the total), so the error grows with count/SUM_BLOCK + SUM_BLOCK
 * rather than with count; declares the totals `acc_<t>`.
 */
function blockedSum(terms: string[], count: string, body: string): string {
  const each = (f: (t: string) => string) => terms.map(f).join(" ");
  return `${each((t) => `var acc_${t} = R();`)}
  for (var i0 = 0u; i0 < ${count}; i0 += ${SUM_BLOCK}u) {
    ${each((t) => `var in_${t} = R();`)}
    for (var i = i0; i < min(i0 + ${SUM_BLOCK}u, ${count}); i++) {
      ${body}
    }
    ${each((t) => `acc_${t} = r_add(acc_${t}, in_${t});`)}
  }`;
}

/**
 * Prelude of a group's `stats` term: its i-th partial is chunk qi = i / cg of channel
 * ci = c0 + i % cg, at index `pi`.
 */
const GROUP_TERM = `let qi = i / u.cg;
      let ci = c0 + i - qi * u.cg;
      let pi = (n * u.chunks + qi) * f + ci;`;

/** The number of positions of chunk qi, as an R (forward `stats`). */
const COUNT = `let cnt = r_f(f32(min(u.chunk, u.spatial - qi * u.chunk)));`;

function forwardBody(v: Forward): string {
  switch (v.stage) {
    case "partials":
      return `${CHUNK_THREAD}
  var sum = R();
  ${positions("sum = r_add(sum, x[at_x(r, k)]);")}
  let m = r_div(sum, r_f(f32(s1 - s0)));
  var m2 = R();
  ${
        positions(`let d = r_sub(x[at_x(r, k)], m);
    m2 = r_fma(d, d, m2);`)
      }
  part[at_part(r, t)] = m;
  part[at_part(r, np + t)] = m2;`;
    case "stats":
      return `  let w = t;
  let n = w / u.groups;
  let c0 = (w - n * u.groups) * u.cg;
  let terms = u.chunks * u.cg;
  let lenr = r_f(f32(u.len));
  ${
        blockedSum(
          ["s"],
          "terms",
          `${GROUP_TERM}
      ${COUNT}
      in_s = r_fma(cnt, part[at_part(r, pi)], in_s);`,
        )
      }
  let mean = r_div(acc_s, lenr);
  // Each chunk's M2 plus its mean's deviation from the group's: no cancellation.
  ${
        blockedSum(
          ["q"],
          "terms",
          `${GROUP_TERM}
      ${COUNT}
      let d = r_sub(part[at_part(r, pi)], mean);
      in_q = r_add(in_q, r_fma(r_mul(cnt, d), d, part[at_part(r, np + pi)]));`,
        )
      }
  let inv = r_div(r_f(1.0), r_sqrt(r_add(r_div(acc_q, lenr), scalars[r].${v.epsField})));
  stat[at_stat(r, w)] = mean;
  stat[at_stat(r, ng + w)] = inv;
${v.save ? "  inv_std[at_inv_std(r, w)] = inv;" : ""}`;
    case "apply": {
      const o = v.affine ? "r_fma(g, h, b)" : "h";
      return `${CHUNK_THREAD}
  let mean = stat[at_stat(r, w)];
  let inv = stat[at_stat(r, ng + w)];
${v.affine ? "  let g = gamma[at_gamma(r, c)];\n  let b = beta[at_beta(r, c)];" : ""}
  ${
        positions(`let h = r_mul(r_sub(x[at_x(r, k)], mean), inv);
    ${v.save ? "xhat[at_xhat(r, k)] = h;" : ""}
    y[at_y(r, k)] = ${v.relu ? `select(R(), ${o}, r_hi(${o}) > 0.0)` : o};`)
      }`;
    }
  }
}

function backwardBody(v: Backward): string {
  switch (v.stage) {
    case "partials":
      return `${CHUNK_THREAD}
  var a = R();
  var b = R();
  ${
        positions(`let d = ${dyAt(v.relu, "k")};
    a = r_add(a, d);
    b = r_fma(d, xhat[at_xhat(r, k)], b);`)
      }
  part[at_part(r, t)] = a;
  part[at_part(r, np + t)] = b;`;
    case "stats": {
      const g = v.gamma ? "gamma[at_gamma(r, ci)]" : "";
      const add = (acc: string, p: string) =>
        v.gamma ? `${acc} = r_fma(${g}, ${p}, ${acc});` : `${acc} = r_add(${acc}, ${p});`;
      const group = `let w = t;
    let n = w / u.groups;
    let c0 = (w - n * u.groups) * u.cg;
    // Σdh = Σ gamma[c]·Σdy and Σdh·xhat, over the group's partials.
    ${
        blockedSum(
          ["s", "sx"],
          "u.chunks * u.cg",
          `${GROUP_TERM}
      ${add("in_s", "part[at_part(r, pi)]")}
      ${add("in_sx", "part[at_part(r, np + pi)]")}`,
        )
      }
    stat[at_stat(r, w)] = acc_s;
    stat[at_stat(r, ng + w)] = acc_sx;`;
      if (!columns(v)) return `  ${group}`;
      return `  if (t < ng) {
    ${group}
  } else {
    // Channel j over every example and chunk: dbeta = ΣΣdy, dgamma = ΣΣdy·xhat.
    let j = t - ng;
    ${
        blockedSum(
          ["s", "sx"],
          "u.rows * u.chunks",
          `in_s = r_add(in_s, part[at_part(r, i * f + j)]);
      in_sx = r_add(in_sx, part[at_part(r, np + i * f + j)]);`,
        )
      }
${v.dgamma ? "    dgamma[at_dgamma(r, j)] = acc_sx;" : ""}
${v.dbeta ? "    dbeta[at_dbeta(r, j)] = acc_s;" : ""}
  }`;
    }
    case "apply":
      return `${CHUNK_THREAD}
  let lenr = r_f(f32(u.len));
  let scale = r_div(inv_std[at_inv_std(r, w)], lenr);
  let sdh = stat[at_stat(r, w)];
  let sdhx = stat[at_stat(r, ng + w)];
${v.gamma ? "  let g = gamma[at_gamma(r, c)];" : ""}
  ${
        positions(`let d = ${v.gamma ? `r_mul(${dyAt(v.relu, "k")}, g)` : dyAt(v.relu, "k")};
    let bracket = r_sub(r_sub(r_mul(lenr, d), sdh), r_mul(xhat[at_xhat(r, k)], sdhx));
    dx[at_dx(r, k)] = r_mul(scale, bracket);`)
      }`;
  }
}

/** WGSL expression of a variant's thread count per run. */
function threadsWgsl(v: GroupNormVariant): string {
  if (v.stage !== "stats") return "np";
  return columns(v) ? "ng + f" : "ng";
}

/**
 * WGSL of one GroupNorm variant (any pass and stage) in `precision` with `workgroup` threads per
 * workgroup (unchecked here: the kernel builders check a tiling): one template.
 */
export function groupNormWgsl(
  v: GroupNormVariant,
  precision: Precision = "f32",
  workgroup: number = DEFAULT_GROUPNORM_TILING.workgroup,
): string {
  const body = v.pass === "forward" ? forwardBody(v) : backwardBody(v);
  return /* wgsl */ `${groupNormInterface(v, precision).wgsl}

@compute @workgroup_size(${workgroup})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let f = u.channels;
  // Partials per term (one per example, chunk and channel); (example, group) pairs.
  let np = u.rows * u.chunks * f;
  let ng = u.rows * u.groups;
  let t = (wid.y * nwg.x + wid.x) * ${workgroup}u + lid;
  if (t >= ${threadsWgsl(v)}) { return; }
  let r = wid.z;
${body}
}
`;
}

/**
 * The positions per chunk the kernels use for `chunkPositions`: at most the positions, doubled
 * where rows·chunks would pass MAX_COLUMN_TERMS (many rows of large images). At chunk >=
 * spatial, chunks = 1, so only more rows than MAX_COLUMN_TERMS are refused ({@link chunking}).
 */
export function groupNormChunk(g: GroupNormGeometry, chunkPositions: number): number {
  let chunk = Math.min(chunkPositions, g.spatial);
  while (g.rows * ceilDiv(g.spatial, chunk) > MAX_COLUMN_TERMS && chunk < g.spatial) chunk *= 2;
  return chunk;
}

/** The chunking of each example's positions into chunks of `chunkPositions`: chunk and chunks. */
function chunking(
  g: GroupNormGeometry,
  chunkPositions: number,
): { chunk: number; chunks: number } {
  const chunk = groupNormChunk(g, chunkPositions), chunks = ceilDiv(g.spatial, chunk);
  if (g.rows * chunks > MAX_COLUMN_TERMS) {
    throw new Error(
      `groupnorm: ${g.rows} rows exceed the ${MAX_COLUMN_TERMS} its scale and shift gradients ` +
        `sum: use a smaller --batch-size or --probe`,
    );
  }
  return { chunk, chunks };
}

/**
 * The three dispatches of `base`'s pass over the views named by the slots (others are
 * ignored), blocked by `tiling` (checked here); the scratch is allocated here.
 */
function build(
  gpu: Gpu,
  base: Omit<Forward, "stage"> | Omit<Backward, "stage">,
  shape: { precision?: Precision; runs: number; geometry: GroupNormGeometry },
  views: Record<string, TensorView | undefined>,
  scalars: GPUBuffer | undefined,
  tiling: Partial<GroupNormTiling> | undefined,
): Dispatch[] {
  const { precision = "f32", runs, geometry: g } = shape;
  assertCounts("groupnorm", { runs, ...g });
  const { chunkPositions, workgroup } = normalizationTiling(
    "groupnorm",
    DEFAULT_GROUPNORM_TILING,
    tiling,
  );
  if (g.channels % g.groups !== 0) {
    throw new Error(`groupnorm: ${g.channels} channels do not split into ${g.groups} groups`);
  }
  const { chunk, chunks } = chunking(g, chunkPositions);
  const cg = g.channels / g.groups;
  const np = g.rows * chunks * g.channels, ng = g.rows * g.groups;
  const scratch = (n: number, what: string): TensorView => ({
    buffer: realBuffer(gpu, precision, runs * n, `groupnorm ${base.pass} ${what}`),
    offset: 0,
    runStride: n,
  });
  const all: Record<string, TensorView | undefined> = {
    ...views,
    part: scratch(2 * np, "partials"),
    stat: scratch(2 * ng, "statistics"),
  };
  const lengths: Record<string, number> = {
    part: 2 * np,
    stat: 2 * ng,
    inv_std: ng,
    gamma: g.channels,
    beta: g.channels,
    dgamma: g.channels,
    dbeta: g.channels,
  };
  return (["partials", "stats", "apply"] as const).map((stage) => {
    const v = { ...base, stage } as GroupNormVariant;
    const bound = tensorSlots(v).map((s) => {
      const view = all[s];
      if (!view) throw new Error(`groupnorm ${v.pass} ${stage}: missing ${s}`);
      return [s, { view, length: lengths[s] ?? g.rows * g.spatial * g.channels }];
    });
    const threads = stage !== "stats" ? np : ng + (columns(v) ? g.channels : 0);
    return groupNormInterface(v, precision).dispatch(gpu, {
      code: groupNormWgsl(v, precision, workgroup),
      dims: { ...g, cg, len: g.spatial * cg, chunk, chunks },
      views: Object.fromEntries(bound),
      runs,
      workgroups: foldedGrid(threads, runs, workgroup),
      scalars: readsEps(v) ? scalars : undefined,
    });
  });
}

/**
 * GroupNorm forward = reference `groupNormForward` (then `reluForward` with `relu`); eps is read
 * per run from `scalars[run][epsField]`. Three dispatches, blocked by `tiling` (fields absent:
 * {@link DEFAULT_GROUPNORM_TILING}'s); a bad tiling throws.
 */
export function groupNormForwardKernel(
  gpu: Gpu,
  spec: GroupNormForwardSpec,
  tiling?: Partial<GroupNormTiling>,
): Dispatch[] {
  const { flags, views } = forwardSlots("groupnorm", spec);
  return build(gpu, { pass: "forward", ...flags }, spec, views, spec.scalars, tiling);
}

/**
 * GroupNorm backward = reference `groupNormBackward` (of `reluBackward`'s dx when `y` is
 * given); outputs are overwritten. Three dispatches, blocked by `tiling` as the forward's.
 */
export function groupNormBackwardKernel(
  gpu: Gpu,
  spec: GroupNormBackwardSpec,
  tiling?: Partial<GroupNormTiling>,
): Dispatch[] {
  const { flags, views } = backwardSlots(spec);
  return build(gpu, { pass: "backward", ...flags }, spec, views, undefined, tiling);
}
