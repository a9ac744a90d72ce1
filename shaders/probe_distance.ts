/**
 * The monitor's function-space distances (THEORY §7) on the probe batch: every run's logits
 * against run 0's (run A), all runs in one dispatch, one workgroup per run, tree reductions.
 *
 * Precision near 0 (the interesting regime: equivalent runs agree to ~1e-7). Per row, with
 * d_c = l0_c - lr_c centred on its p0-weighted mean (d'_c = d_c - Σ p0 d, so S1 = Σ p0 d' ≈ 0):
 *   KL(p0||pr) = S2 - ψ(y) = S1 + log1p(y),
 *   S2 = Σ p0 φ(d'),  y = Σ p0 (e^{-d'} - 1) = S2 - S1,
 *   pr_c - p0_c = p0_c expm1(t_c),  t_c = -(d'_c + log1p(y)),
 * with φ(x) = e^{-x} - 1 + x >= 0 and ψ(y) = y - log1p(y) >= 0 summed as Taylor series near 0
 * (directly elsewhere), and the first KL form used for y <= 1, the second beyond. Every term is
 * then accurate relative to the distance itself (measured on lavapipe: KL values of 1e-13 and
 * maxProb values of 5e-7 within ~1e-6 relative; ~3e-5 when l0 - lr has a large common shift,
 * from the f32 rounding of d), where the textbook Σ p0 (log p0 - log pr) in f32 bottoms out at
 * ~1e-7 absolute. Only rows so different that p0 e^{-d'} could overflow f32 (where KL is huge
 * anyway) use the log-softmax differences directly; there 1 - p and log s come from the sum of
 * the non-maximal terms, so saturated rows (p_max = 1 - 1e-6) stay accurate. Either way, a
 * probability that underflows to 0 contributes 0, never NaN.
 *
 * @module
 */

import { assertCounts, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";

/**
 * Layout of the per-run output record (f32 words): max|softmax_r - softmax_0|,
 * Σ (l_r - l_0)^2, Σ l_0^2, count(argmax_r == argmax_0), Σ_rows KL(p_0||p_r),
 * count(argmax_r == label); words 6 and 7 are written 0.
 */
export const PROBE_STATS = {
  words: 8,
  maxProb: 0,
  diff2: 1,
  norm2: 2,
  agree: 3,
  kl: 4,
  correct: 5,
} as const;

/** Invocations per workgroup (one workgroup per run). */
const WG = 256;
/** Logits are read by every run's workgroup (run 0's too), so `out` must not share their buffer. */
const PROBE = new KernelInterface("probe distance", {
  dims: ["rows", "classes"],
  slots: [{ name: "logits" }, { name: "labels", elem: "u32" }, {
    name: "out",
    access: "read_write",
  }],
});
/** Largest log of p0_c e^{-d'_c} for which the centred formulas are used (no f32 overflow). */
const MAX_LOG_Q = 60;

/** WGSL `fn name(x) = x^2 * Σ_k coeffs[k] x^k` by Horner. */
function seriesWgsl(name: string, coeffs: number[]): string {
  const lit = (c: number) => c.toPrecision(17);
  let t = lit(coeffs[coeffs.length - 1]);
  for (let k = coeffs.length - 2; k >= 0; k--) t = `${lit(coeffs[k])} + x * (${t})`;
  return `fn ${name}(x: f32) -> f32 { return x * x * (${t}); }`;
}

/** e^x - 1 - x = Σ_{n>=2} x^n/n!, to n = 12 (used for |x| <= 0.5: truncation < 1e-10 relative). */
const EXP_TAIL = Array.from({ length: 11 }, (_, k) => {
  let f = 1;
  for (let n = 2; n <= k + 2; n++) f *= n;
  return 1 / f;
});
/** y - log1p(y) = Σ_{n>=2} (-1)^n y^n/n, to n = 19 (used for |y| <= 0.25: truncation < 1e-11). */
const LOG1P_TAIL = Array.from({ length: 18 }, (_, k) => (k % 2 ? -1 : 1) / (k + 2));

/** WGSL of the probe distances; run r = `workgroup_id.z`, rows strided over the invocations. */
export function probeDistanceWgsl(): string {
  const sums = ["diff2", "norm2", "agree", "kl", "correct"];
  return /* wgsl */ `${PROBE.wgsl}

var<workgroup> w_max: array<f32, ${WG}>;
${sums.map((s) => `var<workgroup> w_${s}: array<f32, ${WG}>;`).join("\n")}

${seriesWgsl("exp_tail", EXP_TAIL)}
${seriesWgsl("log1p_tail", LOG1P_TAIL)}
// ψ(y) = y - log1p(y) and log1p: series near 0, direct elsewhere
fn psi(y: f32) -> f32 { if (abs(y) <= 0.25) { return log1p_tail(y); } return y - log(1.0 + y); }
fn log1p_acc(x: f32) -> f32 { return x - psi(x); }

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let lid = lid3.x;
  let r = wid.z;
  let nc = u.classes;
  var t_max = 0.0;
  ${sums.map((s) => `var t_${s} = 0.0;`).join(" ")}
  for (var row = lid; row < u.rows; row += ${WG}u) {
    let b0 = at_logits(0u, row * nc);
    let br = at_logits(r, row * nc);
    // maxima and argmax (first maximum, as the reference)
    var m0 = logits[b0]; var a0 = 0u; var mr = logits[br]; var ar = 0u;
    for (var c = 1u; c < nc; c++) {
      let v0 = logits[b0 + c]; let vr = logits[br + c];
      if (v0 > m0) { m0 = v0; a0 = c; }
      if (vr > mr) { mr = vr; ar = c; }
    }
    t_agree += select(0.0, 1.0, a0 == ar);
    t_correct += select(0.0, 1.0, ar == labels[at_labels(r, row)]);
    // s = 1 + rest: the argmax term is exp(0) = 1, and rest keeps 1 - p_max and log s =
    // log1p(rest) accurate when a row saturates; wd = s0 * (p0-weighted mean of d = l0 - lr)
    var rest0 = 0.0; var restr = 0.0; var wd = 0.0;
    for (var c = 0u; c < nc; c++) {
      let l0 = logits[b0 + c]; let lr = logits[br + c];
      let e0 = exp(l0 - m0);
      if (c != a0) { rest0 += e0; }
      if (c != ar) { restr += exp(lr - mr); }
      let d = l0 - lr;
      wd += e0 * d;
      t_diff2 += d * d;
      t_norm2 += l0 * l0;
    }
    let inv0 = 1.0 / (1.0 + rest0);
    let log_s0 = log1p_acc(rest0);
    let dbar = wd * inv0;
    var kl = 0.0;
    // centred path unless p0_c e^{-d'_c} = exp(lr_c - m0 + dbar - log s0) could overflow
    if (mr - m0 + dbar - log_s0 <= ${MAX_LOG_Q}) {
      var s1 = 0.0; var s2 = 0.0;
      for (var c = 0u; c < nc; c++) {
        let l0 = logits[b0 + c];
        let z0 = l0 - m0;
        let p0 = exp(z0) * inv0;
        let dc = (l0 - logits[br + c]) - dbar;
        s1 += p0 * dc;
        // p0 φ(d'), with p0 e^{-d'} formed in the log domain (no inf * 0 when p0 underflows)
        if (abs(dc) <= 0.5) { s2 += p0 * exp_tail(-dc); }
        else { s2 += exp(z0 - log_s0 - dc) - p0 + p0 * dc; }
      }
      let y = s2 - s1;
      // KL = S2 - ψ(y) = S1 + log1p(y) (S1 ≈ 0 by the centring): the form without cancellation
      var log1p_y = 0.0;
      if (y <= 1.0) { let p = psi(y); kl = s2 - p; log1p_y = y - p; }
      else { log1p_y = log(1.0 + y); kl = s1 + log1p_y; }
      for (var c = 0u; c < nc; c++) {
        let l0 = logits[b0 + c];
        let z0 = l0 - m0;
        let t = -(((l0 - logits[br + c]) - dbar) + log1p_y); // log pr_c - log p0_c
        // pr - p0 = p0 expm1(t); far from 0, pr = exp(log p0 + t) <= 1 directly
        var dp = 0.0;
        if (abs(t) <= 0.5) { dp = exp(z0) * inv0 * (t + exp_tail(t)); }
        else { dp = exp(z0 - log_s0 + t) - exp(z0) * inv0; }
        t_max = max(t_max, abs(dp));
      }
    } else {
      let invr = 1.0 / (1.0 + restr);
      // log p0_c - log pr_c = ((d_c - (m0 - mr)) - (log s0 - log sr)), grouped so that the
      // common argmax term is exact: from d, not z0 - zr, which rounds twice at |logit| ~ 60
      let dm = m0 - mr;
      let dlog = log_s0 - log1p_acc(restr);
      for (var c = 0u; c < nc; c++) {
        let l0 = logits[b0 + c]; let lr = logits[br + c];
        let p0 = exp(l0 - m0) * inv0;
        var dp = p0 - exp(lr - mr) * invr;
        // at the common argmax p may be near 1: difference the complements (1 - p) instead
        if (c == a0 && c == ar) { dp = restr * invr - rest0 * inv0; }
        t_max = max(t_max, abs(dp));
        kl += p0 * (((l0 - lr) - dm) - dlog); // 0 * finite when p0 underflows
      }
    }
    t_kl += max(kl, 0.0); // KL >= 0; rounding may not make it negative
  }
  w_max[lid] = t_max;
  ${sums.map((s) => `w_${s}[lid] = t_${s};`).join(" ")}
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      w_max[lid] = max(w_max[lid], w_max[lid + s]);
      ${sums.map((s) => `w_${s}[lid] = w_${s}[lid] + w_${s}[lid + s];`).join("\n      ")}
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let o = at_out(r, 0u);
    out[o + ${PROBE_STATS.maxProb}u] = w_max[0];
${
    sums.map((s) => `    out[o + ${PROBE_STATS[s as keyof typeof PROBE_STATS]}u] = w_${s}[0];`)
      .join("\n")
  }
    out[o + 6u] = 0.0;
    out[o + 7u] = 0.0;
  }
}`;
}

/** Shapes of {@link probeDistanceKernel}. */
export interface ProbeDistanceSpec {
  runs: number;
  rows: number;
  classes: number;
  /** Run-stacked rows×classes logits; run 0 is the reference run A. */
  logits: TensorView;
  /** u32[rows], shared by all runs. */
  labels: GPUBuffer;
  /** Per run {@link PROBE_STATS}.words f32 (runStride >= 8); must not be the logits' buffer. */
  out: TensorView;
}

/**
 * Probe distances of every run against run 0, as raw sums (see {@link PROBE_STATS}); the CPU
 * forms relL2 = sqrt(diff2/norm2), agree/rows, kl/rows, correct/rows (reference/metrics.ts).
 */
export function probeDistanceKernel(gpu: Gpu, spec: ProbeDistanceSpec): Dispatch {
  const { runs, rows, classes, logits, labels, out } = spec;
  assertCounts("probe distance", { rows, classes });
  return PROBE.dispatch(gpu, {
    code: probeDistanceWgsl(),
    dims: { rows, classes },
    views: {
      logits: { view: logits, length: rows * classes },
      labels: { view: { buffer: labels, offset: 0, runStride: 0 }, length: rows },
      out: { view: out, length: PROBE_STATS.words },
    },
    runs,
    workgroups: [1, 1, runs],
  });
}
