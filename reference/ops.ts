/**
 * Float64 CPU references of every GPU kernel, forward and backward side by side (llm.c style).
 * One run at a time, row-major arrays. The WGSL kernels in `shaders/` are tested against these,
 * and the float64 reference trainer (`reference/trainer.ts`) is built from them.
 *
 * @module
 */

/** Numeric arrays the references accept (float64 for the trainer, float32 inputs in tests). */
export type Vec = ArrayLike<number>;

/**
 * C = op(A) · op(B) (+ bias on every row). op(A) is m×k: A is stored m×k, or k×m when `transA`.
 * op(B) is k×n: B is stored k×n, or n×k when `transB`.
 */
export function matmul(
  a: Vec,
  b: Vec,
  m: number,
  n: number,
  k: number,
  transA = false,
  transB = false,
  bias?: Vec,
): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = bias ? bias[j] : 0;
      for (let p = 0; p < k; p++) {
        s += (transA ? a[p * m + i] : a[i * k + p]) * (transB ? b[j * k + p] : b[p * n + j]);
      }
      c[i * n + j] = s;
    }
  }
  return c;
}

/** What BatchNorm's training-mode forward keeps for its backward. */
export interface BatchNormCache {
  /** Normalised input (x - mean) * invStd, rows×features. */
  xhat: Float64Array;
  mean: Float64Array;
  /** Biased batch variance (divided by rows), as used for normalisation. */
  variance: Float64Array;
  invStd: Float64Array;
}

/**
 * BatchNorm forward in training mode over `rows` (the batch) for each of `features` columns:
 * y = gamma * (x - mean) / sqrt(var + eps) + beta, with the biased batch variance.
 * Without gamma/beta (no affine) y = xhat.
 */
export function batchNormForward(
  x: Vec,
  rows: number,
  features: number,
  eps: number,
  gamma?: Vec,
  beta?: Vec,
): { y: Float64Array } & BatchNormCache {
  const mean = new Float64Array(features);
  const variance = new Float64Array(features);
  const invStd = new Float64Array(features);
  const xhat = new Float64Array(rows * features);
  const y = new Float64Array(rows * features);
  for (let j = 0; j < features; j++) {
    let s = 0;
    for (let i = 0; i < rows; i++) s += x[i * features + j];
    const mu = s / rows;
    let v = 0;
    for (let i = 0; i < rows; i++) v += (x[i * features + j] - mu) ** 2;
    v /= rows;
    const inv = 1 / Math.sqrt(v + eps);
    mean[j] = mu;
    variance[j] = v;
    invStd[j] = inv;
    const g = gamma ? gamma[j] : 1, b = beta ? beta[j] : 0;
    for (let i = 0; i < rows; i++) {
      const h = (x[i * features + j] - mu) * inv;
      xhat[i * features + j] = h;
      y[i * features + j] = g * h + b;
    }
  }
  return { y, xhat, mean, variance, invStd };
}

/**
 * BatchNorm backward (training mode): with dxhat = dy * gamma,
 * dx = invStd / rows * (rows * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)),
 * dgamma = sum(dy * xhat), dbeta = sum(dy) over the batch.
 */
export function batchNormBackward(
  dy: Vec,
  cache: BatchNormCache,
  rows: number,
  features: number,
  gamma?: Vec,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const dx = new Float64Array(rows * features);
  const dgamma = new Float64Array(features);
  const dbeta = new Float64Array(features);
  const { xhat, invStd } = cache;
  for (let j = 0; j < features; j++) {
    const g = gamma ? gamma[j] : 1;
    let sdy = 0, sdyx = 0;
    for (let i = 0; i < rows; i++) {
      sdy += dy[i * features + j];
      sdyx += dy[i * features + j] * xhat[i * features + j];
    }
    dgamma[j] = sdyx;
    dbeta[j] = sdy;
    const scale = (g * invStd[j]) / rows;
    for (let i = 0; i < rows; i++) {
      const k = i * features + j;
      dx[k] = scale * (rows * dy[k] - sdy - xhat[k] * sdyx);
    }
  }
  return { dx, dgamma, dbeta };
}

/**
 * BatchNorm forward in eval mode from running statistics, which are stored divided by
 * `unit` (1 in plain mode, the layer's weight norm in weight-norm mode, THEORY §5):
 * y = gamma * (x - unit*mean) / sqrt(unit^2*var + eps) + beta.
 */
export function batchNormEval(
  x: Vec,
  rows: number,
  features: number,
  eps: number,
  runningMean: Vec,
  runningVar: Vec,
  unit = 1,
  gamma?: Vec,
  beta?: Vec,
): Float64Array {
  const y = new Float64Array(rows * features);
  for (let j = 0; j < features; j++) {
    const mu = unit * runningMean[j];
    const inv = 1 / Math.sqrt(unit * unit * runningVar[j] + eps);
    const g = gamma ? gamma[j] : 1, b = beta ? beta[j] : 0;
    for (let i = 0; i < rows; i++) y[i * features + j] = g * (x[i * features + j] - mu) * inv + b;
  }
  return y;
}

/**
 * Running-statistics update, in place, as PyTorch (unbiased variance), in units of `unit`:
 * rm = (1-m) rm + m * mean/unit, rv = (1-m) rv + m * var * rows/(rows-1) / unit^2.
 */
export function updateRunningStats(
  runningMean: Float64Array,
  runningVar: Float64Array,
  cache: BatchNormCache,
  rows: number,
  momentum: number,
  unit = 1,
): void {
  const unbias = rows / Math.max(1, rows - 1);
  for (let j = 0; j < runningMean.length; j++) {
    runningMean[j] = (1 - momentum) * runningMean[j] + (momentum * cache.mean[j]) / unit;
    runningVar[j] = (1 - momentum) * runningVar[j] +
      (momentum * cache.variance[j] * unbias) / (unit * unit);
  }
}

/** ReLU forward: max(x, 0). */
export function reluForward(x: Vec): Float64Array {
  return Float64Array.from(x, (v) => (v > 0 ? v : 0));
}

/** ReLU backward from the forward's output: dx = dy where y > 0, else 0. */
export function reluBackward(dy: Vec, y: Vec): Float64Array {
  return Float64Array.from(dy, (d, i) => (y[i] > 0 ? d : 0));
}

/** BatchNorm (training mode) then ReLU, the twin of the GPU's fused kernel: y = relu(BN(x)). */
export function batchNormReluForward(
  x: Vec,
  rows: number,
  features: number,
  eps: number,
  gamma?: Vec,
  beta?: Vec,
): { y: Float64Array } & BatchNormCache {
  const bn = batchNormForward(x, rows, features, eps, gamma, beta);
  return { ...bn, y: reluForward(bn.y) };
}

/** Backward of relu(BN(x)) from its output y: BatchNorm's backward of reluBackward(dy, y). */
export function batchNormReluBackward(
  dy: Vec,
  y: Vec,
  cache: BatchNormCache,
  rows: number,
  features: number,
  gamma?: Vec,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  return batchNormBackward(reluBackward(dy, y), cache, rows, features, gamma);
}

/**
 * Softmax cross-entropy, numerically stable (max subtracted). Returns the mean loss over rows,
 * the count of rows whose argmax (first maximum) equals the label, the probabilities, and the
 * gradient of the mean loss, dlogits = (softmax - onehot) / rows.
 */
export function softmaxCrossEntropy(
  logits: Vec,
  labels: ArrayLike<number>,
  rows: number,
  classes: number,
): { loss: number; correct: number; probs: Float64Array; dlogits: Float64Array } {
  const probs = new Float64Array(rows * classes);
  const dlogits = new Float64Array(rows * classes);
  let loss = 0, correct = 0;
  for (let i = 0; i < rows; i++) {
    let max = -Infinity, arg = 0;
    for (let c = 0; c < classes; c++) {
      const v = logits[i * classes + c];
      if (v > max) (max = v), (arg = c);
    }
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[i * classes + c] - max);
    const label = labels[i];
    loss += Math.log(sum) + max - logits[i * classes + label];
    if (arg === label) correct++;
    for (let c = 0; c < classes; c++) {
      const p = Math.exp(logits[i * classes + c] - max) / sum;
      probs[i * classes + c] = p;
      dlogits[i * classes + c] = (p - (c === label ? 1 : 0)) / rows;
    }
  }
  return { loss: loss / rows, correct, probs, dlogits };
}

/** Sum of a[i] * b[i] (a squared norm when a === b). */
export function dot(a: Vec, b: Vec): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Column sums of a rows×cols matrix (the bias gradient). */
export function columnSum(a: Vec, rows: number, cols: number): Float64Array {
  const s = new Float64Array(cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) s[j] += a[i * cols + j];
  return s;
}

/** Hyperparameters of one SGD step for one parameter group. */
export interface SgdGroupStep {
  lr: number;
  /** Coupled weight decay (PyTorch's weight_decay): added to the gradient. */
  wd: number;
  momentum: number;
  /** Decoupled shrink of THEORY §8's parametrisation: w <- (1 - shrink) w - lr * buf. */
  shrink?: number;
}

/**
 * SGD with momentum and weight decay exactly as torch.optim.SGD (dampening 0, no Nesterov),
 * in place over `p` and `buf`: g = grad + wd p; buf = momentum buf + g; p = (1-shrink) p - lr buf.
 */
export function sgdStep(p: Float64Array, grad: Vec, buf: Float64Array, h: SgdGroupStep): void {
  const keep = 1 - (h.shrink ?? 0);
  for (let i = 0; i < p.length; i++) {
    const g = grad[i] + h.wd * p[i];
    buf[i] = h.momentum * buf[i] + g;
    p[i] = keep * p[i] - h.lr * buf[i];
  }
}

/**
 * |a/|a| - b/|b||^2 in float64 (norms too): the reference of `shaders/reduce.ts`
 * normalizedDistanceKernel; the angle is 2 asin(sqrt(d)/2).
 */
export function normalizedDistance(a: Vec, b: Vec): number {
  let na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) (na += a[i] * a[i]), (nb += b[i] * b[i]);
  const sa = 1 / Math.sqrt(na), sb = 1 / Math.sqrt(nb);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] * sa - b[i] * sb) ** 2;
  return s;
}

/** lowbias32 (C. Wellons): a 32-bit integer mix with good avalanche, in u32 arithmetic. */
function mix(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * The perturbation sign of element `i` of run `run` at `step` for `seed`: bit for bit the
 * WGSL `perturb_sign` of `shaders/sgd.ts` (chained lowbias32 mixes, sign from the top bit).
 */
export function perturbSign(seed: number, step: number, run: number, i: number): 1 | -1 {
  let h = mix(seed >>> 0);
  h = mix((h + (step >>> 0)) >>> 0);
  h = mix((h + (run >>> 0)) >>> 0);
  h = mix((h + (i >>> 0)) >>> 0);
  return h >= 0x80000000 ? -1 : 1;
}
