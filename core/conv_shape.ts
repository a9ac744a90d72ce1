/**
 * The shape of one 2-D convolution and its output size, shared by the GPU kernels and the
 * float64 references.
 *
 * @module
 */

/** Shape of one convolution (square kernel, same stride and padding on both axes). */
export interface Conv2dShape {
  /** Batch. */
  n: number;
  /** Input height and width. */
  h: number;
  w: number;
  /** Input and output channels. */
  cin: number;
  cout: number;
  /** Kernel size (KH = KW = k). */
  k: number;
  stride: number;
  pad: number;
}

/** Output size along one axis: floor((size + 2*pad - k) / stride) + 1. */
export function convOutputSize(size: number, k: number, stride: number, pad: number): number {
  return Math.floor((size + 2 * pad - k) / stride) + 1;
}

/** Output height and width of `s`; throws on a shape without output or with bad counts. */
export function convOutputShape(s: Conv2dShape): { oh: number; ow: number } {
  const counts = [s.n, s.h, s.w, s.cin, s.cout, s.k, s.stride];
  if (!counts.every((v) => Number.isInteger(v) && v >= 1) || !Number.isInteger(s.pad)) {
    throw new Error(`conv2d: bad shape ${JSON.stringify(s)}`);
  }
  if (s.pad < 0 || s.pad >= s.k) throw new Error(`conv2d: pad ${s.pad} outside [0, k)`);
  const oh = convOutputSize(s.h, s.k, s.stride, s.pad);
  const ow = convOutputSize(s.w, s.k, s.stride, s.pad);
  if (oh < 1 || ow < 1) throw new Error(`conv2d: no output for ${JSON.stringify(s)}`);
  return { oh, ow };
}
