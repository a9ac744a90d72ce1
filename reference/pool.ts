/**
 * Float64 CPU references of the pooling and addition kernels (`shaders/pool.ts`,
 * `shaders/add.ts`), forward and backward side by side, one run at a time. Activations are NHWC:
 * element (n, h, w, c) of an N×H×W×C tensor is at ((n*H + h)*W + w)*C + c.
 *
 * Max-pool tie rule (the GPU kernels follow it exactly): each 2×2 window is scanned in row-major
 * order (h, w), (h, w+1), (h+1, w), (h+1, w+1); a candidate replaces the running maximum only
 * when strictly greater, so the FIRST maximum in that order is the argmax. The forward's value is
 * the argmax's value and the backward routes the window's whole gradient to the argmax alone.
 * NaN inputs are outside the contract (the result then depends on where the NaN sits).
 *
 * @module
 */

import type { Vec } from "./ops.ts";

/** Global average pool: y[n, c] = mean over (h, w) of x[n, h, w, c]; returns N×C. */
export function globalAvgPoolForward(
  x: Vec,
  n: number,
  h: number,
  w: number,
  c: number,
): Float64Array {
  const y = new Float64Array(n * c);
  const hw = h * w;
  for (let b = 0; b < n; b++) {
    for (let p = 0; p < hw; p++) {
      for (let j = 0; j < c; j++) y[b * c + j] += x[(b * hw + p) * c + j];
    }
  }
  for (let i = 0; i < y.length; i++) y[i] /= hw;
  return y;
}

/** Global average pool backward: dx[n, h, w, c] = dy[n, c] / (H*W); returns N×H×W×C. */
export function globalAvgPoolBackward(
  dy: Vec,
  n: number,
  h: number,
  w: number,
  c: number,
): Float64Array {
  const dx = new Float64Array(n * h * w * c);
  const hw = h * w;
  for (let b = 0; b < n; b++) {
    for (let p = 0; p < hw; p++) {
      for (let j = 0; j < c; j++) dx[(b * hw + p) * c + j] = dy[b * c + j] / hw;
    }
  }
  return dx;
}

/**
 * Index into x of the argmax of window (b, ho, wo) in channel j (see the module's tie rule).
 */
export function maxPool2Argmax(
  x: Vec,
  h: number,
  w: number,
  c: number,
  b: number,
  ho: number,
  wo: number,
  j: number,
): number {
  const base = ((b * h + 2 * ho) * w + 2 * wo) * c + j;
  let arg = base;
  for (const k of [base + c, base + w * c, base + w * c + c]) if (x[k] > x[arg]) arg = k;
  return arg;
}

/**
 * Calls `fn(outIndex, argIndex)` for every 2×2 window (stride 2) of an N×H×W×C input: the
 * output element's index and the index of its window's first maximum in x. The one loop nest
 * the forward and backward share.
 */
function forEachMaxWindow(
  x: Vec,
  n: number,
  h: number,
  w: number,
  c: number,
  fn: (outIndex: number, argIndex: number) => void,
): void {
  const ho = Math.floor(h / 2), wo = Math.floor(w / 2);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < ho; i++) {
      for (let k = 0; k < wo; k++) {
        for (let j = 0; j < c; j++) {
          fn(((b * ho + i) * wo + k) * c + j, maxPool2Argmax(x, h, w, c, b, i, k, j));
        }
      }
    }
  }
}

/**
 * 2×2 max pool, stride 2 (PyTorch's MaxPool2d(2)): output N × floor(H/2) × floor(W/2) × C; an
 * odd trailing row or column of the input is ignored. Requires H, W >= 2.
 */
export function maxPool2Forward(
  x: Vec,
  n: number,
  h: number,
  w: number,
  c: number,
): Float64Array {
  const y = new Float64Array(n * Math.floor(h / 2) * Math.floor(w / 2) * c);
  forEachMaxWindow(x, n, h, w, c, (out, arg) => (y[out] = x[arg]));
  return y;
}

/**
 * 2×2 max pool backward: each output gradient goes to its window's argmax in x (the first
 * maximum, see the module doc); every other element of dx, the ignored trailing row and column
 * included, is 0. dy is N × floor(H/2) × floor(W/2) × C; returns N×H×W×C.
 */
export function maxPool2Backward(
  dy: Vec,
  x: Vec,
  n: number,
  h: number,
  w: number,
  c: number,
): Float64Array {
  const dx = new Float64Array(n * h * w * c);
  forEachMaxWindow(x, n, h, w, c, (out, arg) => (dx[arg] += dy[out]));
  return dx;
}

/** Elementwise a + b (residual addition; gradient accumulation). */
export function add(a: Vec, b: Vec): Float64Array {
  return Float64Array.from(a, (v, i) => v + b[i]);
}
