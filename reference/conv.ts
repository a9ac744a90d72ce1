/**
 * Float64 CPU references of the 2-D convolution (llm.c style: forward and both backward
 * products side by side, one run at a time). The WGSL kernels of `shaders/conv2d_*.ts` are
 * tested against these.
 *
 * Layouts: activations NHWC, element (n, h, w, c) at ((n*H + h)*W + w)*C + c; weights
 * [K*K*Cin, Cout] row-major, row (kh*K + kw)*Cin + ci, column co ("inputs × outputs", as the
 * linear layers), so the forward is the GEMM of the im2col matrix [N*OH*OW, K*K*Cin] by W.
 * No bias (a BatchNorm follows every conv). Input position of output (oh, ow) and tap (kh, kw):
 * (oh*stride + kh - pad, ow*stride + kw - pad); positions outside the image read zero.
 *
 * @module
 */

import type { Vec } from "./ops.ts";

export { type Conv2dShape, convOutputShape, convOutputSize } from "../core/conv_shape.ts";
import { type Conv2dShape, convOutputShape } from "../core/conv_shape.ts";

/**
 * Calls `fn(xIndex, wRow, yIndex)` for every valid (output pixel, tap, input channel) with the
 * NHWC input element index, the weight row (kh*K + kw)*Cin + ci and the output pixel index
 * (n*OH + oh)*OW + ow: the one loop nest all three products share.
 */
function forEachTap(
  s: Conv2dShape,
  fn: (xIndex: number, wRow: number, pixel: number) => void,
): void {
  const { oh: OH, ow: OW } = convOutputShape(s);
  for (let n = 0; n < s.n; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const pixel = (n * OH + oh) * OW + ow;
        for (let kh = 0; kh < s.k; kh++) {
          const ih = oh * s.stride + kh - s.pad;
          if (ih < 0 || ih >= s.h) continue;
          for (let kw = 0; kw < s.k; kw++) {
            const iw = ow * s.stride + kw - s.pad;
            if (iw < 0 || iw >= s.w) continue;
            const xBase = ((n * s.h + ih) * s.w + iw) * s.cin;
            const wBase = (kh * s.k + kw) * s.cin;
            for (let ci = 0; ci < s.cin; ci++) fn(xBase + ci, wBase + ci, pixel);
          }
        }
      }
    }
  }
}

/** y[n, oh, ow, co] = sum over kh, kw, ci of x[n, ih, iw, ci] * w[(kh*K + kw)*Cin + ci, co]. */
export function conv2dForward(x: Vec, w: Vec, s: Conv2dShape): Float64Array {
  const { oh, ow } = convOutputShape(s);
  const y = new Float64Array(s.n * oh * ow * s.cout);
  forEachTap(s, (xi, row, p) => {
    const v = x[xi];
    for (let co = 0; co < s.cout; co++) y[p * s.cout + co] += v * w[row * s.cout + co];
  });
  return y;
}

/** dx[n, ih, iw, ci] = sum over the (pixel, tap) pairs reading it of dy[pixel, co] * w[row, co]. */
export function conv2dBackwardInput(dy: Vec, w: Vec, s: Conv2dShape): Float64Array {
  const dx = new Float64Array(s.n * s.h * s.w * s.cin);
  forEachTap(s, (xi, row, p) => {
    let acc = 0;
    for (let co = 0; co < s.cout; co++) acc += dy[p * s.cout + co] * w[row * s.cout + co];
    dx[xi] += acc;
  });
  return dx;
}

/** dw[row, co] = sum over output pixels of im2col(x)[pixel, row] * dy[pixel, co]. */
export function conv2dBackwardWeight(x: Vec, dy: Vec, s: Conv2dShape): Float64Array {
  const dw = new Float64Array(s.k * s.k * s.cin * s.cout);
  forEachTap(s, (xi, row, p) => {
    const v = x[xi];
    for (let co = 0; co < s.cout; co++) dw[row * s.cout + co] += v * dy[p * s.cout + co];
  });
  return dw;
}

/** Floating-point operations of one product (each of the three): 2*N*OH*OW*Cout*K*K*Cin. */
export function conv2dFlops(s: Conv2dShape): number {
  const { oh, ow } = convOutputShape(s);
  return 2 * s.n * oh * ow * s.cout * s.k * s.k * s.cin;
}
