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
 * Precision (`precision.ts`): logits, output record and every intermediate (softmax, series,
 * sums, maxima) are R; only the counts stay f32 (exact integers). In df64 the same formulas
 * carry ~2^-47 instead of 2^-24, so distances far below float32's rounding are measured:
 * logits 1e-11 apart (relative) give maxProb ~2e-11 and KL ~2e-22 a row to ~1e-14 relative, and
 * distances of any size come out to ~1e-13 relative (the series run longer in df64 and f64).
 * Cost on lavapipe (2 busy cores, 512 rows × 10 classes, R = 3): 10–13 ms in df64 against
 * ~1 ms in f32 (several df64 exp per logit).
 *
 * @module
 */

import { assertCounts, KernelInterface } from "./binding.ts";
import type { Dispatch, Gpu, TensorView } from "./gpu.ts";
import { type Precision, realLiteral } from "./precision.ts";

/**
 * The per-run output record (reals), in order: max|softmax_r - softmax_0|, Σ (l_r - l_0)^2,
 * Σ l_0^2, count(argmax_r == argmax_0), Σ_rows KL(p_0||p_r), and (unless left out)
 * count(argmax_r == label).
 */
export const PROBE_TERMS = ["maxprob", "diff2", "norm2", "agree", "kl", "correct"] as const;

/** Offsets of {@link PROBE_TERMS} in the record, and its length. */
export const PROBE_STATS = {
  words: PROBE_TERMS.length,
  maxProb: 0,
  diff2: 1,
  norm2: 2,
  agree: 3,
  kl: 4,
  correct: 5,
} as const;

/** Invocations per workgroup (one workgroup per run). */
const WG = 256;
/**
 * The kernel's interface in `precision`. Logits are read by every run's workgroup (run 0's
 * too), so `out` must not share their buffer.
 */
function probeInterface(precision: Precision): KernelInterface {
  return new KernelInterface("probe distance", {
    precision,
    dims: ["rows", "classes"],
    slots: [{ name: "logits" }, { name: "labels", elem: "u32" }, {
      name: "out",
      access: "read_write",
    }],
  });
}
/**
 * Largest log of p0_c e^{-d'_c} for which the centred formulas are used (no overflow: df64's
 * range is float32's).
 */
const MAX_LOG_Q = 60;

/** WGSL `fn name(x: R) -> R` = x^2 * Σ_k coeffs[k] x^k by Horner. */
function seriesWgsl(name: string, coeffs: number[], precision: Precision): string {
  const c = (k: number) => realLiteral(precision, coeffs[k]);
  let t = c(coeffs.length - 1);
  for (let k = coeffs.length - 2; k >= 0; k--) t = `r_fma(x, ${t}, ${c(k)})`;
  return `fn ${name}(x: R) -> R { return r_mul(r_mul(x, x), ${t}); }`;
}

/**
 * e^x - 1 - x = Σ_{n>=2} x^n/n!, used for |x| <= 0.5, to n = 12 in f32 (truncation < 1e-10
 * relative) and n = 15 otherwise (< 1e-17).
 */
function expTail(precision: Precision): number[] {
  const last = precision === "f32" ? 12 : 15;
  let f = 1;
  return Array.from({ length: last - 1 }, (_, k) => 1 / (f *= k + 2));
}
/**
 * y - log1p(y) = Σ_{n>=2} (-1)^n y^n/n, used for |y| <= 0.25, to n = 19 in f32 (truncation
 * < 1e-11 relative) and n = 28 otherwise (< 1e-17).
 */
function log1pTail(precision: Precision): number[] {
  const last = precision === "f32" ? 19 : 28;
  return Array.from({ length: last - 1 }, (_, k) => (k % 2 ? -1 : 1) / (k + 2));
}

/**
 * WGSL of the probe distances; run r = `workgroup_id.z`, rows strided over the invocations.
 * Counts (agree, correct) are summed as f32, exact below 2^24 rows.
 */
export function probeDistanceWgsl(precision: Precision = "f32", correct = true): string {
  const sums = ["diff2", "norm2", "kl"], counts = ["agree", "correct"];
  const stored = correct ? counts : ["agree"];
  const one = "r_f(1.0)";
  return /* wgsl */ `${probeInterface(precision).wgsl}

var<workgroup> w_max: array<R, ${WG}>;
${sums.map((s) => `var<workgroup> w_${s}: array<R, ${WG}>;`).join("\n")}
${counts.map((s) => `var<workgroup> w_${s}: array<f32, ${WG}>;`).join("\n")}

${seriesWgsl("exp_tail", expTail(precision), precision)}
${seriesWgsl("log1p_tail", log1pTail(precision), precision)}
// ψ(y) = y - log1p(y) and log1p: series near 0, direct elsewhere
fn psi(y: R) -> R {
  if (r_hi(r_abs(y)) <= 0.25) { return log1p_tail(y); }
  return r_sub(y, r_log(r_add(${one}, y)));
}
fn log1p_acc(x: R) -> R { return r_sub(x, psi(x)); }

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let lid = lid3.x;
  let r = wid.z;
  let nc = u.classes;
  var t_max = R();
  ${sums.map((s) => `var t_${s} = R();`).join(" ")}
  ${counts.map((s) => `var t_${s} = 0.0;`).join(" ")}
  for (var row = lid; row < u.rows; row += ${WG}u) {
    let b0 = at_logits(0u, row * nc);
    let br = at_logits(r, row * nc);
    // maxima and argmax (first maximum, as the reference)
    var m0 = logits[b0]; var a0 = 0u; var mr = logits[br]; var ar = 0u;
    for (var c = 1u; c < nc; c++) {
      let v0 = logits[b0 + c]; let vr = logits[br + c];
      if (r_gt(v0, m0)) { m0 = v0; a0 = c; }
      if (r_gt(vr, mr)) { mr = vr; ar = c; }
    }
    t_agree += select(0.0, 1.0, a0 == ar);
    t_correct += select(0.0, 1.0, ar == labels[at_labels(r, row)]);
    // s = 1 + rest: the argmax term is exp(0) = 1, and rest keeps 1 - p_max and log s =
    // log1p(rest) accurate when a row saturates; wd = s0 * (p0-weighted mean of d = l0 - lr)
    var rest0 = R(); var restr = R(); var wd = R();
    for (var c = 0u; c < nc; c++) {
      let l0 = logits[b0 + c]; let lr = logits[br + c];
      let e0 = r_exp(r_sub(l0, m0));
      if (c != a0) { rest0 = r_add(rest0, e0); }
      if (c != ar) { restr = r_add(restr, r_exp(r_sub(lr, mr))); }
      let d = r_sub(l0, lr);
      wd = r_fma(e0, d, wd);
      t_diff2 = r_fma(d, d, t_diff2);
      t_norm2 = r_fma(l0, l0, t_norm2);
    }
    let inv0 = r_div(${one}, r_add(${one}, rest0));
    let log_s0 = log1p_acc(rest0);
    let dbar = r_mul(wd, inv0);
    var kl = R();
    // centred path unless p0_c e^{-d'_c} = exp(lr_c - m0 + dbar - log s0) could overflow
    if (r_hi(r_sub(r_add(r_sub(mr, m0), dbar), log_s0)) <= ${MAX_LOG_Q}.0) {
      var s1 = R(); var s2 = R();
      for (var c = 0u; c < nc; c++) {
        let l0 = logits[b0 + c];
        let z0 = r_sub(l0, m0);
        let p0 = r_mul(r_exp(z0), inv0);
        let dc = r_sub(r_sub(l0, logits[br + c]), dbar);
        s1 = r_fma(p0, dc, s1);
        // p0 φ(d'), with p0 e^{-d'} formed in the log domain (no inf * 0 when p0 underflows)
        if (r_hi(r_abs(dc)) <= 0.5) { s2 = r_fma(p0, exp_tail(-dc), s2); }
        else {
          s2 = r_add(s2, r_add(r_sub(r_exp(r_sub(r_sub(z0, log_s0), dc)), p0), r_mul(p0, dc)));
        }
      }
      let y = r_sub(s2, s1);
      // KL = S2 - ψ(y) = S1 + log1p(y) (S1 ≈ 0 by the centring): the form without cancellation
      var log1p_y = R();
      if (r_hi(y) <= 1.0) { let p = psi(y); kl = r_sub(s2, p); log1p_y = r_sub(y, p); }
      else { log1p_y = r_log(r_add(${one}, y)); kl = r_add(s1, log1p_y); }
      for (var c = 0u; c < nc; c++) {
        let l0 = logits[b0 + c];
        let z0 = r_sub(l0, m0);
        // log pr_c - log p0_c
        let t = -r_add(r_sub(r_sub(l0, logits[br + c]), dbar), log1p_y);
        // pr - p0 = p0 expm1(t); far from 0, pr = exp(log p0 + t) <= 1 directly
        var dp = R();
        if (r_hi(r_abs(t)) <= 0.5) { dp = r_mul(r_mul(r_exp(z0), inv0), r_add(t, exp_tail(t))); }
        else { dp = r_sub(r_exp(r_add(r_sub(z0, log_s0), t)), r_mul(r_exp(z0), inv0)); }
        t_max = r_max(t_max, r_abs(dp));
      }
    } else {
      let invr = r_div(${one}, r_add(${one}, restr));
      // log p0_c - log pr_c = ((d_c - (m0 - mr)) - (log s0 - log sr)), grouped so that the
      // common argmax term is exact: from d, not z0 - zr, which rounds twice at |logit| ~ 60
      let dm = r_sub(m0, mr);
      let dlog = r_sub(log_s0, log1p_acc(restr));
      for (var c = 0u; c < nc; c++) {
        let l0 = logits[b0 + c]; let lr = logits[br + c];
        let p0 = r_mul(r_exp(r_sub(l0, m0)), inv0);
        var dp = r_sub(p0, r_mul(r_exp(r_sub(lr, mr)), invr));
        // at the common argmax p may be near 1: difference the complements (1 - p) instead
        if (c == a0 && c == ar) { dp = r_sub(r_mul(restr, invr), r_mul(rest0, inv0)); }
        t_max = r_max(t_max, r_abs(dp));
        kl = r_fma(p0, r_sub(r_sub(r_sub(l0, lr), dm), dlog), kl); // 0 * finite when p0 underflows
      }
    }
    t_kl = r_add(t_kl, r_max(kl, R())); // KL >= 0; rounding may not make it negative
  }
  w_max[lid] = t_max;
  ${[...sums, ...counts].map((s) => `w_${s}[lid] = t_${s};`).join(" ")}
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      w_max[lid] = r_max(w_max[lid], w_max[lid + s]);
      ${sums.map((s) => `w_${s}[lid] = r_add(w_${s}[lid], w_${s}[lid + s]);`).join("\n      ")}
      ${counts.map((s) => `w_${s}[lid] = w_${s}[lid] + w_${s}[lid + s];`).join("\n      ")}
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
${
    stored.map((s) =>
      `    out[o + ${PROBE_STATS[s as keyof typeof PROBE_STATS]}u] = r_f(w_${s}[0]);`
    ).join("\n")
  }
  }
}`;
}

/** Shapes of {@link probeDistanceKernel}. */
export interface ProbeDistanceSpec {
  /** Arithmetic of the logits, the distances and every intermediate (default f32). */
  precision?: Precision;
  runs: number;
  rows: number;
  classes: number;
  /** Run-stacked rows×classes logits; run 0 is the reference run A. */
  logits: TensorView;
  /** u32[rows], shared by all runs. */
  labels: GPUBuffer;
  /**
   * Per run the {@link PROBE_TERMS} (without `correct` when `correct` is false); must not be the
   * logits' buffer.
   */
  out: TensorView;
  /** Whether to store count(argmax_r == label) (default true). */
  correct?: boolean;
}

/**
 * Probe distances of every run against run 0, as raw sums (see {@link PROBE_STATS}); the CPU
 * forms relL2 = sqrt(diff2/norm2), agree/rows, kl/rows, correct/rows (reference/metrics.ts).
 */
export function probeDistanceKernel(gpu: Gpu, spec: ProbeDistanceSpec): Dispatch {
  const { precision = "f32", runs, rows, classes, logits, labels, out, correct = true } = spec;
  assertCounts("probe distance", { rows, classes });
  return probeInterface(precision).dispatch(gpu, {
    code: probeDistanceWgsl(precision, correct),
    dims: { rows, classes },
    views: {
      logits: { view: logits, length: rows * classes },
      labels: { view: { buffer: labels, offset: 0, runStride: 0 }, length: rows },
      out: { view: out, length: PROBE_STATS.words - (correct ? 0 : 1) },
    },
    runs,
    workgroups: [1, 1, runs],
  });
}
