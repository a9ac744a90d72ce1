/**
 * Deterministic per-run sums over group S in two dispatches, and the building blocks the
 * optimizer's fused monitor (`sgd.ts`) shares with them, so a norm comes out bit for bit the same
 * whichever kernel forms it:
 *
 * 1. chunks: one workgroup per chunk of at most {@link CHUNK} elements (chunks never straddle two
 *    tensors); each invocation adds {@link INNER} elements into a short partial before its
 *    accumulator (accuracy), then a two-level workgroup sum writes the chunk's partial of every
 *    term;
 * 2. totals: one workgroup per run adds the chunks' partials in a fixed order into each term's
 *    total and, for the layered terms, each tensor's sum.
 *
 * Decisions (measured in docs/results/kernel-variants.md, "sums"): chunks of 16384 elements keep
 * several workgroups per run busy while the workgroup reductions, whose barriers dominate on
 * lavapipe, stay a small share; 64 invocations of 256 elements each let one reduction pass carry
 * every term of the optimizer's monitor in the 16 KiB of workgroup storage any adapter offers.
 * Every accumulator and sum is R, so df64 sums come back to ~1e-14 relative (each is ~50
 * additions deep).
 *
 * Aliasing: the vectors are only read by (1), which writes only the partials; (2) reads the
 * partials and writes `out` and `layers`, which may share a buffer.
 *
 * @module
 */

import { assertCounts, KernelInterface, type Slot } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import { realBuffer, uploadBuffer } from "./gpu.ts";
import { type Precision, realBytes } from "./precision.ts";

/** Invocations per workgroup of both dispatches (a power of two). */
export const SUMS_WG = 64;
/** Elements an invocation adds into a short partial before its accumulator (accuracy). */
export const INNER = 16;
/** Largest chunk one workgroup of the first dispatch sums (256 elements per invocation). */
export const CHUNK = SUMS_WG * 256;

/** Workgroup storage every WebGPU adapter offers (bytes): the batched tree sums fill it. */
const WORKGROUP_STORAGE = 16384;

/** How many values one {@link treeSumsWgsl} adds at once: as many as fit, at most `terms`. */
export function treeWidth(precision: Precision, terms: number): number {
  const fit = Math.floor(WORKGROUP_STORAGE / (SUMS_WG * realBytes(precision)));
  return Math.max(1, Math.min(terms, fit));
}

/** The fan-in of each of the two levels of {@link treeSumsWgsl} (its square is the workgroup). */
const FAN_IN = Math.sqrt(SUMS_WG);
if (!Number.isInteger(FAN_IN)) throw new Error(`sums: ${SUMS_WG} invocations is not a square`);

/**
 * WGSL `tree_sums(lid, v)`: each of the `width` values of `v` added over the workgroup, each in
 * the same fixed order, for invocation 0 (call from uniform control flow). Two levels of
 * {@link FAN_IN} sequential additions (3 barriers) rather than a binary tree (7): on lavapipe a
 * reduction's cost is its barrier steps over the whole workgroup, not its additions.
 */
export function treeSumsWgsl(width: number): string {
  const add = (from: string) =>
    `for (var k = 0u; k < ${width}u; k++) { s[k] = r_add(s[k], ${from}[k]); }`;
  return /* wgsl */ `
var<workgroup> tree: array<array<R, ${width}>, ${SUMS_WG}>;
fn tree_sums(lid: u32, v: array<R, ${width}>) -> array<R, ${width}> {
  workgroupBarrier();
  tree[lid] = v;
  workgroupBarrier();
  if (lid < ${FAN_IN}u) {
    var s = tree[lid];
    for (var j = 1u; j < ${FAN_IN}u; j++) { ${add(`tree[lid + ${FAN_IN}u * j]`)} }
    tree[lid] = s;
  }
  workgroupBarrier();
  var s = tree[0];
  if (lid == 0u) {
    for (var j = 1u; j < ${FAN_IN}u; j++) { ${add("tree[j]")} }
  }
  return s;
}`;
}

/**
 * WGSL adding each of `values` over the workgroup, `width` at a time (uniform control flow);
 * invocation 0 runs `store(k, sum)` for the k-th.
 */
export function workgroupSums(
  values: string[],
  width: number,
  store: (k: number, sum: string) => string,
): string {
  const out: string[] = [];
  for (let b = 0; b < values.length; b += width) {
    const batch = values.slice(b, b + width);
    out.push(
      `var batch_${b}: array<R, ${width}>;`,
      ...batch.map((x, j) => `batch_${b}[${j}] = ${x};`),
      `let sums_${b} = tree_sums(lid, batch_${b});`,
      `if (lid == 0u) { ${batch.map((_, j) => store(b + j, `sums_${b}[${j}]`)).join(" ")} }`,
    );
  }
  return out.join("\n  ");
}

/**
 * WGSL of the chunk loop every first dispatch shares: `body` (statements over element `i`) runs
 * for each element of [start, end) in the order that fixes the sums' rounding; `terms` names the
 * accumulators (`acc_<t>` over the chunk, `in_<t>` the short partial the body adds into).
 */
export function chunkLoop(terms: string[], body: string): string {
  const each = (f: (t: string) => string) => terms.map(f).join(" ");
  return /* wgsl */ `${each((t) => `var acc_${t} = R();`)}
  for (var base = start + lid; base < end; base += ${SUMS_WG * INNER}u) {
    ${each((t) => `var in_${t} = R();`)}
    for (var j = 0u; j < ${INNER}u; j++) {
      let i = base + j * ${SUMS_WG}u;
      if (i < end) {
        ${body}
      }
    }
    ${each((t) => `acc_${t} = r_add(acc_${t}, in_${t});`)}
  }`;
}

/**
 * WGSL storing each accumulator's workgroup sum as chunk `c`'s partials (uniform control
 * flow): `terms[r]` are run r's accumulator names (`acc_<name>`), in its partials' order, and
 * `runs[r]` the WGSL expression of its run index.
 */
export function storePartials(terms: string[][], runs: string[], width: number): string {
  const at = terms.flatMap((names, r) => names.map((_, k) => ({ r, k, K: names.length })));
  return workgroupSums(
    terms.flat().map((t) => `acc_${t}`),
    width,
    (j, sum) => `partials[at_partials(${runs[at[j].r]}, c * ${at[j].K}u + ${at[j].k}u)] = ${sum};`,
  );
}

/**
 * The chunk table: chunk starts (chunks + 1 entries, the last = the end), then each segment's
 * first chunk (segments + 1 entries, the last = chunks).
 */
export function chunkTable(segments: number[]): Uint32Array {
  const starts: number[] = [], firsts: number[] = [];
  let at = 0;
  for (const len of segments) {
    firsts.push(starts.length);
    for (let s = 0; s < len; s += CHUNK) starts.push(at + s);
    at += len;
  }
  firsts.push(starts.length);
  return Uint32Array.from([...starts, at, ...firsts]);
}

/** A chunk table on the GPU. */
export interface ChunkTable {
  view: TensorView;
  /** Entries of the table. */
  length: number;
  chunks: number;
  /** Each segment's first chunk, then the chunk count. */
  firsts: number[];
}

/** The chunk table of `segments` on the GPU. */
export function uploadChunkTable(
  gpu: Gpu,
  segments: number[],
): ChunkTable {
  const table = chunkTable(segments), chunks = table.length - segments.length - 2;
  return {
    view: { buffer: uploadBuffer(gpu, table, "chunk table"), offset: 0, runStride: 0 },
    length: table.length,
    chunks,
    firsts: [...table.subarray(chunks + 1)],
  };
}

/** What the totals dispatch writes: every term's total, and the layered terms' tensor sums. */
export interface TotalsOutputs {
  /** Term k's total of run r at out.offset + r * out.runStride + k (absent: not stored). */
  out?: TensorView;
  /** Per layered term index, where its sum over tensor l goes (+ r * runStride + l). */
  layers: Map<number, TensorView>;
}

/** The totals interface: the partials read, the totals and per-tensor sums written. */
function totalsInterface(out: boolean, layered: number[], precision: Precision): KernelInterface {
  const slots: Slot[] = [
    { name: "partials" },
    { name: "table", elem: "u32" },
    ...(out ? [{ name: "out", access: "read_write" as const }] : []),
    ...layered.map((k) => ({ name: `layers_${k}`, access: "read_write" as const })),
  ];
  return new KernelInterface("sums (totals)", {
    precision,
    dims: ["chunks", "summed_chunks", "segments"],
    slots,
  });
}

/**
 * WGSL of the second dispatch: per run, each of the `terms` terms' total over the first
 * `summed_chunks` chunks (with `out`) and each `layered` term's sum over each of the first
 * `segments` tensors; each sum adds its chunks in the same fixed order.
 */
export function totalSumsWgsl(
  out: boolean,
  layered: number[],
  terms: number,
  precision: Precision = "f32",
): string {
  const K = terms, width = treeWidth(precision, Math.max(out ? K : 0, layered.length));
  const add = (acc: string, k: number) =>
    `${acc} = r_add(${acc}, partials[at_partials(r, c * ${K}u + ${k}u)]);`;
  const ks = Array.from({ length: K }, (_, k) => k);
  const totals = `${ks.map((k) => `var acc_${k} = R();`).join(" ")}
  for (var c = lid; c < u.summed_chunks; c += ${SUMS_WG}u) { ${
    ks.map((k) => add(`acc_${k}`, k)).join(" ")
  } }
  ${
    workgroupSums(ks.map((k) => `acc_${k}`), width, (k, sum) =>
      `out[at_out(r, ${k}u)] = ${sum};`)
  }`;
  const layers = `for (var l = 0u; l < u.segments; l++) {
    let first = table[u.chunks + 1u + l];
    let last = table[u.chunks + 2u + l];
    ${layered.map((k) => `var layer_${k} = R();`).join(" ")}
    for (var c = first + lid; c < last; c += ${SUMS_WG}u) { ${
    layered.map((k) => add(`layer_${k}`, k)).join(" ")
  } }
    ${
    workgroupSums(
      layered.map((k) => `layer_${k}`),
      width,
      (j, sum) => `layers_${layered[j]}[at_layers_${layered[j]}(r, l)] = ${sum};`,
    )
  }
  }`;
  return /* wgsl */ `${totalsInterface(out, layered, precision).wgsl}
${treeSumsWgsl(width)}

@compute @workgroup_size(${SUMS_WG})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let lid = lid3.x;
  let r = wid.z;
  ${out ? totals : ""}
  ${layered.length > 0 ? layers : ""}
}`;
}

/**
 * The totals dispatch over `partials` (runs × summedChunks × terms, chunk-major) of a chunk
 * table of `segments` (the first `layeredSegments` of which are S's tensors).
 */
export function totalsDispatch(
  gpu: Gpu,
  spec: {
    precision: Precision;
    runs: number;
    table: ChunkTable;
    summedChunks: number;
    terms: number;
    layeredSegments: number;
    partials: TensorView;
  } & TotalsOutputs,
): Dispatch {
  const { precision, runs, table, summedChunks, terms, layeredSegments, partials, out } = spec;
  const layered = [...spec.layers.keys()];
  const views: Record<string, { view: TensorView; length: number }> = {
    partials: { view: partials, length: summedChunks * terms },
    table: { view: table.view, length: table.length },
  };
  if (out) views.out = { view: out, length: terms };
  for (const [k, view] of spec.layers) views[`layers_${k}`] = { view, length: layeredSegments };
  return totalsInterface(out !== undefined, layered, precision).dispatch(gpu, {
    code: totalSumsWgsl(out !== undefined, layered, terms, precision),
    dims: { chunks: table.chunks, summed_chunks: summedChunks, segments: layeredSegments },
    views,
    runs,
    workgroups: [1, 1, runs],
  });
}

/** One per-run sum over S: the dot product of two named vectors. */
export interface DotTerm {
  a: string;
  b: string;
}

/** What {@link fusedSums} reduces and where the sums go. */
export interface FusedSumsSpec {
  /** Arithmetic of the vectors and sums (default f32). */
  precision?: Precision;
  runs: number;
  /** Lengths of the tensors of S, contiguous from element 0 of every vector. */
  segments: number[];
  /** The vectors the terms name (runStride 0: run 0's for every run). */
  vectors: Record<string, TensorView>;
  terms: DotTerm[];
  /** Term k's total of run r at out.offset + r * out.runStride + k, when given. */
  out?: TensorView;
  /** Term 0's sum over tensor l at layers.offset + r * layers.runStride + l, when given. */
  layers?: TensorView;
}

/** The names the terms read. */
function termVectors(terms: DotTerm[]): string[] {
  return [...new Set(terms.flatMap((t) => [t.a, t.b]))];
}

/** The chunk interface: the vectors read, the chunk table, the partials written. */
function chunkInterface(terms: DotTerm[], precision: Precision): KernelInterface {
  return new KernelInterface("sums (chunks)", {
    precision,
    dims: ["chunks"],
    slots: [
      ...termVectors(terms).map((name) => ({ name: `v_${name}` })),
      { name: "table", elem: "u32" as const },
      { name: "partials", access: "read_write" as const },
    ],
  });
}

/** WGSL of the first dispatch: every dot term of one chunk of one run. */
export function chunkSumsWgsl(terms: DotTerm[], precision: Precision = "f32"): string {
  const names = terms.map((_, k) => `${k}`);
  const v = (name: string) => `v_${name}[at_v_${name}(r, i)]`;
  const body = terms.map((t, k) => `in_${k} = r_fma(${v(t.a)}, ${v(t.b)}, in_${k});`);
  const width = treeWidth(precision, terms.length);
  return /* wgsl */ `${chunkInterface(terms, precision).wgsl}
${treeSumsWgsl(width)}

@compute @workgroup_size(${SUMS_WG})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let lid = lid3.x;
  let c = wid.x;
  let r = wid.z;
  let start = table[c];
  let end = table[c + 1u];
  ${chunkLoop(names, body.join("\n        "))}
  ${storePartials([names], ["r"], width)}
}`;
}

/** The two dispatches of {@link FusedSumsSpec}; the buffers they need are made here, once. */
export function fusedSums(gpu: Gpu, spec: FusedSumsSpec): Dispatch[] {
  const { precision = "f32", runs, segments, terms } = spec;
  assertCounts("fused sums", { runs, terms: terms.length, segments: segments.length });
  assertCounts("fused sums", Object.fromEntries(segments.map((s, l) => [`segment ${l}`, s])));
  const length = segments.reduce((a, b) => a + b, 0);
  const table = uploadChunkTable(gpu, segments), chunks = table.chunks;
  const K = terms.length;
  const partials: TensorView = {
    buffer: realBuffer(gpu, precision, runs * chunks * K, "sums partials"),
    offset: 0,
    runStride: chunks * K,
  };
  const views: Record<string, { view: TensorView; length: number }> = {
    table: { view: table.view, length: table.length },
    partials: { view: partials, length: chunks * K },
  };
  for (const name of termVectors(terms)) {
    const view = spec.vectors[name];
    if (!view) throw new Error(`fused sums: no vector ${name}`);
    views[`v_${name}`] = { view, length };
  }
  const first = chunkInterface(terms, precision).dispatch(gpu, {
    code: chunkSumsWgsl(terms, precision),
    dims: { chunks },
    views,
    runs,
    workgroups: [chunks, 1, runs],
  });
  const second = totalsDispatch(gpu, {
    precision,
    runs,
    table,
    summedChunks: chunks,
    terms: K,
    layeredSegments: segments.length,
    partials,
    out: spec.out,
    layers: new Map(spec.layers ? [[0, spec.layers]] : []),
  });
  return [first, second];
}
