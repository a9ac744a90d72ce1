/**
 * Fused reductions over group S: several per-run sums (dot products, or the normalised
 * distance |a/|a| - b/|b||² that keeps the angle exact near 0) in one pass over the vectors,
 * with per-tensor sums of the first term (layer norms) from the same pass.
 *
 * Two dispatches, deterministic: (1) one workgroup per chunk of at most {@link CHUNK} elements
 * and per run (chunks never straddle two tensors) sums every term of its chunk, each invocation
 * adding 16 elements into a short partial, 64 in all, before a workgroup tree sum, into a
 * partials buffer; (2) one workgroup per run adds the chunks' partials, in a fixed order, into
 * each term's total and each tensor's sum. Several workgroups per run keep more cores (or SMs)
 * busy than the one workgroup per run of the separate dot-product kernels this replaces.
 *
 * Measured on lavapipe (2 cores, another job running), MLP 784-256-256-10 (S: 266k elements),
 * R = 3, `deno task bench --profile`, ms of the gradient metrics (3 sums + 2 layer norms) and
 * the weight metrics (2 sums + 2 layer norms, then 2 distances):
 * - five and six one-workgroup-per-run passes (before):  10.9 and 14.1;
 * - fused, 16 elements per invocation (66 chunks a run): 17.8 and 34.4;
 * - fused, 64 (17 chunks a run):                          9.5 and 18.8;
 * - fused, 256 (5 chunks a run):                          7.4 and 15.3.
 * On lavapipe every workgroup's tree sum costs barriers that dominate small chunks; 64 keeps
 * enough workgroups per run for a discrete GPU while staying near the one-pass cost here.
 *
 * Precision (`precision.ts`): vectors, norms, partials, totals and every accumulator and tree
 * sum are R, so in df64 the norms and dot products come back to ~1e-14 relative: each sum is
 * only ~40 df64 additions deep (16 per partial, 4 partials per invocation, two 8-level trees and
 * the totals' strided loop), each good to ~2^-47. Cost on lavapipe (2 busy cores, 3 dots + 2
 * layer sums over 266k elements, R = 3): 16–23 ms in df64 against 7–10 ms in f32.
 *
 * Aliasing: the vectors and norms are only read by (1), which writes only the partials; (2)
 * reads the partials and writes `out` and `layers`, which may share a buffer (the metrics), as
 * may the norms of (1) (read in another dispatch).
 *
 * @module
 */

import { assertCounts, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import { realBuffer, uploadBuffer } from "./gpu.ts";
import type { Precision } from "./precision.ts";

/** Invocations per workgroup of both dispatches (a power of two). */
const WG = 256;
/** Largest chunk one workgroup of the first dispatch sums (16 elements per invocation). */
export const CHUNK = WG * 64;
/** Elements an invocation adds into a short partial before its accumulator (accuracy). */
const INNER = 16;

/** One per-run sum over S: a·b, or |a/|a| - b/|b||² with |a|², |b|² from per-run norms. */
export type SumTerm =
  | { kind: "dot"; a: string; b: string }
  | { kind: "distance"; a: string; b: string; aNorm2: string; bNorm2: string };

/** What {@link fusedSums} reduces and where the sums go. */
export interface FusedSumsSpec {
  /** Arithmetic of the vectors, norms and sums (default f32). */
  precision?: Precision;
  runs: number;
  /** Lengths of the tensors of S, contiguous from element 0 of every vector. */
  segments: number[];
  /** The vectors the terms name (runStride 0: run 0's for every run). */
  vectors: Record<string, TensorView>;
  /** Per-run squared norms the distance terms name (one real per run). */
  norms?: Record<string, TensorView>;
  terms: SumTerm[];
  /** Term k's total of run r at out.offset + r * out.runStride + k. */
  out: TensorView;
  /** Term 0's sum over tensor l at layers.offset + r * layers.runStride + l, when given. */
  layers?: TensorView;
}

/** WGSL `tree_sum(lid, v)`: `v` added over the workgroup (call from uniform control flow). */
const TREE_SUM = /* wgsl */ `
var<workgroup> partial: array<R, ${WG}>;
fn tree_sum(lid: u32, v: R) -> R {
  workgroupBarrier();
  partial[lid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { partial[lid] = r_add(partial[lid], partial[lid + s]); }
    workgroupBarrier();
  }
  return partial[0];
}`;

/** The names a term reads: vectors, then norms. */
function termInputs(terms: SumTerm[]): { vectors: string[]; norms: string[] } {
  const vectors = new Set<string>(), norms = new Set<string>();
  for (const t of terms) {
    vectors.add(t.a);
    vectors.add(t.b);
    if (t.kind === "distance") {
      norms.add(t.aNorm2);
      norms.add(t.bNorm2);
    }
  }
  return { vectors: [...vectors], norms: [...norms] };
}

/** The chunk interface: the vectors and norms read, the chunk table, the partials written. */
function chunkInterface(terms: SumTerm[], precision: Precision): KernelInterface {
  const { vectors, norms } = termInputs(terms);
  return new KernelInterface("fused sums (chunks)", {
    precision,
    dims: ["chunks"],
    slots: [
      ...vectors.map((name) => ({ name: `v_${name}` })),
      ...norms.map((name) => ({ name: `n_${name}` })),
      { name: "table", elem: "u32" as const },
      { name: "partials", access: "read_write" as const },
    ],
  });
}

/** The totals interface: the partials read, the totals (and per-tensor sums) written. */
function totalsInterface(layers: boolean, precision: Precision): KernelInterface {
  return new KernelInterface("fused sums (totals)", {
    precision,
    dims: ["chunks", "terms", "segments"],
    slots: [
      { name: "partials" },
      { name: "out", access: "read_write" },
      ...(layers
        ? [{ name: "table", elem: "u32" as const }, {
          name: "layers",
          access: "read_write" as const,
        }]
        : []),
    ],
  });
}

/** WGSL of the first dispatch: every term of one chunk of one run. */
export function chunkSumsWgsl(terms: SumTerm[], precision: Precision = "f32"): string {
  const { norms } = termInputs(terms);
  const scale = (n: string) => `let s_${n} = r_div(r_f(1.0), r_sqrt(n_${n}[at_n_${n}(r, 0u)]));`;
  const v = (name: string) => `v_${name}[at_v_${name}(r, i)]`;
  const term = (t: SumTerm, k: number) =>
    t.kind === "dot"
      ? `in${k} = r_fma(${v(t.a)}, ${v(t.b)}, in${k});`
      : `{ let d = r_sub(r_mul(${v(t.a)}, s_${t.aNorm2}), r_mul(${v(t.b)}, s_${t.bNorm2})); ` +
        `in${k} = r_fma(d, d, in${k}); }`;
  return /* wgsl */ `${chunkInterface(terms, precision).wgsl}
${TREE_SUM}

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let lid = lid3.x;
  let c = wid.x;
  let r = wid.z;
  let start = table[c];
  let end = table[c + 1u];
  ${norms.map(scale).join("\n  ")}
  ${terms.map((_, k) => `var acc${k} = R();`).join(" ")}
  for (var base = start + lid; base < end; base += ${WG * INNER}u) {
    ${terms.map((_, k) => `var in${k} = R();`).join(" ")}
    for (var j = 0u; j < ${INNER}u; j++) {
      let i = base + j * ${WG}u;
      if (i < end) {
        ${terms.map(term).join("\n        ")}
      }
    }
    ${terms.map((_, k) => `acc${k} = r_add(acc${k}, in${k});`).join(" ")}
  }
  ${
    terms.map((_, k) =>
      `let t${k} = tree_sum(lid, acc${k});
  if (lid == 0u) { partials[at_partials(r, c * ${terms.length}u + ${k}u)] = t${k}; }`
    ).join("\n  ")
  }
}`;
}

/** WGSL of the second dispatch: per run, the terms' totals and term 0's per-tensor sums. */
export function totalSumsWgsl(layers: boolean, precision: Precision = "f32"): string {
  return /* wgsl */ `${totalsInterface(layers, precision).wgsl}
${TREE_SUM}

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let lid = lid3.x;
  let r = wid.z;
  let C = u.chunks;
  let K = u.terms;
  for (var k = 0u; k < K; k++) {
    var acc = R();
    for (var c = lid; c < C; c += ${WG}u) { acc = r_add(acc, partials[at_partials(r, c * K + k)]); }
    let total = tree_sum(lid, acc);
    if (lid == 0u) { out[at_out(r, k)] = total; }
  }
${
    layers
      ? `  for (var l = 0u; l < u.segments; l++) {
    let first = table[C + 1u + l];
    let last = table[C + 2u + l];
    var acc = R();
    for (var c = first + lid; c < last; c += ${WG}u) { acc = r_add(acc, partials[at_partials(r, c * K)]); }
    let total = tree_sum(lid, acc);
    if (lid == 0u) { layers[at_layers(r, l)] = total; }
  }`
      : ""
  }
}`;
}

/**
 * The chunk table: chunk starts (chunks + 1 entries, the last = the end of S), then each
 * tensor's first chunk (segments + 1 entries, the last = chunks).
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

/** The two dispatches of {@link FusedSumsSpec}; the buffers they need are made here, once. */
export function fusedSums(gpu: Gpu, spec: FusedSumsSpec): Dispatch[] {
  const { precision = "f32", runs, segments, terms } = spec;
  assertCounts("fused sums", { runs, terms: terms.length, segments: segments.length });
  assertCounts("fused sums", Object.fromEntries(segments.map((s, l) => [`segment ${l}`, s])));
  const length = segments.reduce((a, b) => a + b, 0);
  const table = chunkTable(segments), chunks = table.length - segments.length - 2;
  const tableView: TensorView = {
    buffer: uploadBuffer(gpu, table, "fused sums chunk table"),
    offset: 0,
    runStride: 0,
  };
  const K = terms.length;
  const partials: TensorView = {
    buffer: realBuffer(gpu, precision, runs * chunks * K, "fused sums partials"),
    offset: 0,
    runStride: chunks * K,
  };
  const { vectors, norms } = termInputs(terms);
  const views: Record<string, { view: TensorView; length: number }> = {
    table: { view: tableView, length: table.length },
    partials: { view: partials, length: chunks * K },
  };
  for (const name of vectors) {
    const view = spec.vectors[name];
    if (!view) throw new Error(`fused sums: no vector ${name}`);
    views[`v_${name}`] = { view, length };
  }
  for (const name of norms) {
    const view = spec.norms?.[name];
    if (!view) throw new Error(`fused sums: no norm ${name}`);
    views[`n_${name}`] = { view, length: 1 };
  }
  const first = chunkInterface(terms, precision).dispatch(gpu, {
    code: chunkSumsWgsl(terms, precision),
    dims: { chunks },
    views,
    runs,
    workgroups: [chunks, 1, runs],
  });
  const layers = spec.layers !== undefined;
  const second = totalsInterface(layers, precision).dispatch(gpu, {
    code: totalSumsWgsl(layers, precision),
    dims: { chunks, terms: K, segments: segments.length },
    views: {
      partials: { view: partials, length: chunks * K },
      out: { view: spec.out, length: K },
      ...(spec.layers && {
        table: { view: tableView, length: table.length },
        layers: { view: spec.layers, length: segments.length },
      }),
    },
    runs,
    workgroups: [1, 1, runs],
  });
  return [first, second];
}
