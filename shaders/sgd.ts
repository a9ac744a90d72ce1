/**
 * The optimizer pass: SGD with momentum (THEORY §2, reference `sgdStep`) of every run over the
 * whole flat parameter vector, A2's perturbation of S (THEORY §6), and the sums the monitor needs,
 * in one pass over memory. Group S = [0, sEnd) uses the run's (lr_s, wd_s, shrink_s), group O
 * its (lr_o, wd_o, shrink_o), all read from the `array<RunScalars>` the CPU rewrites every step.
 *
 * Decision: one invocation updates one element of every run, run A first, so the sums that
 * compare a run with A (the angle) see A's new weights in registers; the update already reads
 * w, g and the momentum buffer and writes w, so the norms, ⟨g, w⟩ and the distances cost no
 * further pass over S. The elements follow `sums.ts`'s chunk loop, so every norm is bit for bit
 * the one a separate sum over the stored vector gives.
 *
 * Two variants: "norms" (every step: each S tensor's ||w_{t+1}||², for Lemma-2 decisions and
 * weight-norm BatchNorm) and "monitor" (metered steps: all of {@link OPTIMIZER_TERMS}).
 * Distances are returned as raw sums, formed exactly on the CPU (`angleFromSums`): for unit
 * vectors â, b̂ of a, b, |â - b̂|² = (|a - b|² - (|a| - |b|)²)/(|a||b|) with |a| - |b| =
 * ⟨a - b, a + b⟩/(|a| + |b|), which keeps the angle exact near 0 when |a| ≈ |b|. The angle to A
 * compares a = s_A w_A and b = s_r w_r, scaled so that |a| ≈ |b| to the plan's predicted norm
 * ratio (`runSetup`). The scaling's rounding bounds the angle's accuracy at ~1 ulp (about 1e-7
 * in f32, 1e-14 in df64), as the normalise-then-subtract it replaces did.
 *
 * One template in every precision (`precision.ts`): df64 and f64 carry the update, the scalars
 * and the sums in R, in the reference's operation order.
 *
 * Aliasing: params and bufs are written; grads, the chunk table and sNorms are only read and must
 * live in other buffers (WebGPU usage scopes); the totals may share the metrics record's buffer.
 *
 * @module
 */

import { KernelInterface } from "./binding.ts";
import { type Dispatch, type Gpu, realBuffer, type TensorView } from "./gpu.ts";
import type { Precision } from "./precision.ts";
import {
  chunkLoop,
  storePartials,
  SUMS_WG,
  totalsDispatch,
  treeSumsWgsl,
  treeWidth,
  uploadChunkTable,
} from "./sums.ts";

/**
 * The sums of the "monitor" variant, per run, in the order of its totals: ||w_t||², ⟨g, w_t⟩,
 * ||g||² (g the loss gradient, before weight decay), ||w_{t+1}||², the angular update's
 * |w_{t+1} - w_t|² and ⟨w_{t+1} - w_t, w_{t+1} + w_t⟩, and the angle to A's |b|², |a - b|² and
 * ⟨a - b, a + b⟩ (a = s_A w_{A,t+1}, b = s_r w_{r,t+1}).
 */
export const OPTIMIZER_TERMS = [
  "norm2_before",
  "grad_dot_w",
  "grad_norm2",
  "norm2",
  "prev_diff2",
  "prev_diff_sum",
  "scaled_norm2",
  "a_diff2",
  "a_diff_sum",
] as const;

/** One of {@link OPTIMIZER_TERMS}. */
export type OptimizerTerm = typeof OPTIMIZER_TERMS[number];

/** Which sums the pass forms: the S tensors' norms only, or everything the monitor reads. */
export type OptimizerVariant = "norms" | "monitor";

/** The terms of a variant, in the order of its partials and totals. */
export function optimizerTerms(variant: OptimizerVariant): readonly OptimizerTerm[] {
  return variant === "monitor" ? OPTIMIZER_TERMS : ["norm2"];
}

const HASH_WGSL = /* wgsl */ `
fn mix(x0: u32) -> u32 {
  var x = x0;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  return x ^ (x >> 16u);
}
// The per-run prefix mix(mix(mix(seed) + step) + run) is the same for every element.
fn run_hash(seed: u32, step: u32, run: u32) -> u32 { return mix(mix(mix(seed) + step) + run); }
fn perturb_sign(prefix: u32, i: u32) -> f32 {
  return select(1.0, -1.0, mix(prefix + i) >= 0x80000000u);
}`;

function sgdInterface(variant: OptimizerVariant, precision: Precision): KernelInterface {
  return new KernelInterface(`optimizer (${variant})`, {
    precision,
    dims: ["size", "s_end", "s_chunks", "segments"],
    slots: [
      { name: "params", access: "read_write" },
      { name: "grads" },
      { name: "bufs", access: "read_write" },
      { name: "table", elem: "u32" },
      { name: "partials", access: "read_write" },
      ...(variant === "monitor" ? [{ name: "s_norms" }] : []),
    ],
    runScalars: true,
  });
}

/**
 * WGSL of one run's per-run setup: its scalars, perturbation prefix and (monitor) the angle's
 * scale: A's is 1/||w_{A,t}||; another run's is A's over its predicted norm ratio c_pred (its
 * norm then matches A's to the prediction's accuracy, so the angle's sums do not cancel), or
 * 1/||w_{r,t}|| where it has no prediction.
 */
function runSetup(r: number, variant: OptimizerVariant): string {
  const norm = `var n_${r} = R();
  for (var l = 0u; l < u.segments; l++) { n_${r} = r_add(n_${r}, s_norms[at_s_norms(${r}u, l)]); }
  let own_${r} = select(r_div(r_f(1.0), r_sqrt(n_${r})), r_f(1.0), r_hi(n_${r}) == 0.0);`;
  const scale = r === 0
    ? `let s_0 = own_0;`
    : `let s_${r} = select(own_${r}, r_div(s_0, sc_${r}.c_pred), r_hi(sc_${r}.c_pred) > 0.0);`;
  return `let sc_${r} = scalars[${r}];
  let prefix_${r} = run_hash(sc_${r}.seed, sc_${r}.step, ${r}u);
  ${
    variant === "monitor"
      ? `${norm}
  ${scale}`
      : ""
  }`;
}

/** WGSL of run r's update of element i (p the old weight, q the new) and its terms. */
function runElement(r: number, variant: OptimizerVariant): string {
  const update = `let p_${r} = params[at_params(${r}u, i)];
        let g_${r} = grads[at_grads(${r}u, i)];
        let b_${r} = at_bufs(${r}u, i);
        let lr_${r} = select(sc_${r}.lr_o, sc_${r}.lr_s, in_s);
        let wd_${r} = select(sc_${r}.wd_o, sc_${r}.wd_s, in_s);
        let keep_${r} = r_sub(r_f(1.0), select(sc_${r}.shrink_o, sc_${r}.shrink_s, in_s));
        let buf_${r} = r_fma(sc_${r}.momentum, bufs[b_${r}], r_add(g_${r}, r_mul(wd_${r}, p_${r})));
        bufs[b_${r}] = buf_${r};
        var q_${r} = r_sub(r_mul(keep_${r}, p_${r}), r_mul(lr_${r}, buf_${r}));
        if (in_s && r_hi(sc_${r}.perturb) != 0.0) {
          let xi = r_f(perturb_sign(prefix_${r}, i));
          q_${r} = r_mul(q_${r}, r_add(r_f(1.0), r_mul(sc_${r}.perturb, xi)));
        }
        params[at_params(${r}u, i)] = q_${r};`;
  if (variant === "norms") {
    return `${update}\n        in_norm2_${r} = r_fma(q_${r}, q_${r}, in_norm2_${r});`;
  }
  return `${update}
        in_norm2_before_${r} = r_fma(p_${r}, p_${r}, in_norm2_before_${r});
        in_grad_dot_w_${r} = r_fma(g_${r}, p_${r}, in_grad_dot_w_${r});
        in_grad_norm2_${r} = r_fma(g_${r}, g_${r}, in_grad_norm2_${r});
        in_norm2_${r} = r_fma(q_${r}, q_${r}, in_norm2_${r});
        let d_${r} = r_sub(q_${r}, p_${r});
        in_prev_diff2_${r} = r_fma(d_${r}, d_${r}, in_prev_diff2_${r});
        in_prev_diff_sum_${r} = r_fma(d_${r}, r_add(q_${r}, p_${r}), in_prev_diff_sum_${r});
        let v_${r} = r_mul(q_${r}, s_${r});
        in_scaled_norm2_${r} = r_fma(v_${r}, v_${r}, in_scaled_norm2_${r});
        let e_${r} = r_sub(v_0, v_${r});
        in_a_diff2_${r} = r_fma(e_${r}, e_${r}, in_a_diff2_${r});
        in_a_diff_sum_${r} = r_fma(e_${r}, r_add(v_0, v_${r}), in_a_diff_sum_${r});`;
}

/**
 * WGSL of the update-and-partials dispatch for `runs` runs: one workgroup per chunk of the flat
 * vector (S's tensors, then O), each invocation updating its elements in every run.
 */
export function sgdWgsl(
  variant: OptimizerVariant,
  runs: number,
  precision: Precision = "f32",
): string {
  const ids = Array.from({ length: runs }, (_, r) => r);
  const terms = optimizerTerms(variant);
  const names = ids.flatMap((r) => terms.map((t) => `${t}_${r}`));
  const body = ids.map((r) => runElement(r, variant)).join("\n        ");
  // Every run's terms in one batch of tree sums where the workgroup storage allows.
  const width = treeWidth(precision, runs * terms.length);
  const store = storePartials(
    ids.map((r) => terms.map((t) => `${t}_${r}`)),
    ids.map((r) => `${r}u`),
    width,
  );
  return /* wgsl */ `${sgdInterface(variant, precision).wgsl}
${HASH_WGSL}
${treeSumsWgsl(width)}

@compute @workgroup_size(${SUMS_WG})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let lid = lid3.x;
  let c = wid.x;
  let start = table[c];
  let end = table[c + 1u];
  ${ids.map((r) => runSetup(r, variant)).join("\n  ")}
  ${chunkLoop(names, `let in_s = i < u.s_end;\n        ${body}`)}
  // Only S's chunks have partials; c is uniform, so the tree sums stay in uniform control flow.
  if (c < u.s_chunks) {
  ${store}
  }
}`;
}

/** Shapes and buffers of {@link sgdKernel}. */
export interface SgdSpec {
  /** Arithmetic of params, grads, bufs, the scalars and the sums (default f32). */
  precision?: Precision;
  runs: number;
  /** Elements per run of the flat vector. */
  size: number;
  /** The lengths of S's tensors, contiguous from element 0 (sEnd is their sum). */
  segments: number[];
  params: TensorView;
  grads: TensorView;
  /** Momentum buffers, same layout as params. */
  bufs: TensorView;
  /** `array<RunScalars>` of the same precision, one record per run (`packRunScalars`). */
  scalars: GPUBuffer;
  /**
   * Per run, each S tensor's squared norm (segments.length reals): read by "monitor" as the
   * last known norms (the angle's scales), then rewritten with the updated weights' by both.
   */
  sNorms: TensorView;
  /**
   * The "monitor" variant's outputs: the {@link OPTIMIZER_TERMS} totals (consecutive, in that
   * order) and each S tensor's ||w_t||².
   */
  monitor?: { totals: TensorView; layerNorm2Before: TensorView };
}

/**
 * One optimizer step of all runs (g = grad + wd p; buf = momentum buf + g;
 * p = (1-shrink) p - lr buf; then S's p *= 1 + perturb ξ where perturb ≠ 0) with its sums:
 * two dispatches, update-and-partials then totals.
 */
export function sgdKernel(gpu: Gpu, spec: SgdSpec): Dispatch[] {
  const { precision = "f32", runs, size, segments, params, grads, bufs, scalars, sNorms } = spec;
  const sEnd = segments.reduce((a, b) => a + b, 0), L = segments.length;
  if (!(sEnd <= size)) throw new Error(`optimizer: S (${sEnd}) exceeds the vector (${size})`);
  const variant: OptimizerVariant = spec.monitor ? "monitor" : "norms";
  const terms = optimizerTerms(variant), K = terms.length;
  const table = uploadChunkTable(gpu, sEnd < size ? [...segments, size - sEnd] : segments);
  const sChunks = table.firsts[L];
  const partials: TensorView = {
    buffer: realBuffer(gpu, precision, runs * sChunks * K, "optimizer partials"),
    offset: 0,
    runStride: sChunks * K,
  };
  const update = sgdInterface(variant, precision).dispatch(gpu, {
    code: sgdWgsl(variant, runs, precision),
    dims: { size, s_end: sEnd, s_chunks: sChunks, segments: L },
    views: {
      params: { view: params, length: size },
      grads: { view: grads, length: size },
      bufs: { view: bufs, length: size },
      table: { view: table.view, length: table.length },
      partials: { view: partials, length: sChunks * K },
      ...(spec.monitor && { s_norms: { view: sNorms, length: L } }),
    },
    runs,
    workgroups: [table.chunks, 1, 1],
    scalars,
  });
  const layers = new Map([[terms.indexOf("norm2"), sNorms]]);
  if (spec.monitor) layers.set(terms.indexOf("norm2_before"), spec.monitor.layerNorm2Before);
  const totals = totalsDispatch(gpu, {
    precision,
    runs,
    table,
    summedChunks: sChunks,
    terms: K,
    layeredSegments: L,
    partials,
    out: spec.monitor?.totals,
    layers,
  });
  return [update, totals];
}
