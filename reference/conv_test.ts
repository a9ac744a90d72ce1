/**
 * Checks of the float64 convolution references: the forward against an explicit im2col matrix
 * times W (the reference `matmul`), and dx, dW against central finite differences of
 * L = sum(dy_fixed * y) on small odd shapes, for K=3 and K=1 at stride 1 and 2.
 *
 * @module
 */

import {
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dForward,
  type Conv2dShape,
  convOutputShape,
  convOutputSize,
} from "./conv.ts";
import { dot, matmul } from "./ops.ts";
import { freshRng } from "../core/test_util.ts";
import type { Rng } from "../core/prng.ts";

const SHAPES: [string, Conv2dShape][] = [
  ["K=3 s1", { n: 2, h: 5, w: 7, cin: 3, cout: 2, k: 3, stride: 1, pad: 1 }],
  ["K=3 s2", { n: 2, h: 7, w: 6, cin: 2, cout: 3, k: 3, stride: 2, pad: 1 }],
  ["K=1 s1", { n: 3, h: 3, w: 5, cin: 3, cout: 2, k: 1, stride: 1, pad: 0 }],
  ["K=1 s2", { n: 2, h: 5, w: 7, cin: 3, cout: 5, k: 1, stride: 2, pad: 0 }],
];

function random(rng: Rng, n: number): Float64Array {
  return Float64Array.from({ length: n }, () => rng.uniform(-1, 1));
}

/** The im2col matrix [N*OH*OW, K*K*Cin] of x (zero where the tap falls outside the image). */
function im2col(x: Float64Array, s: Conv2dShape): Float64Array {
  const { oh: OH, ow: OW } = convOutputShape(s);
  const cols = s.k * s.k * s.cin;
  const m = new Float64Array(s.n * OH * OW * cols);
  for (let n = 0; n < s.n; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const row = (n * OH + oh) * OW + ow;
        for (let kh = 0; kh < s.k; kh++) {
          for (let kw = 0; kw < s.k; kw++) {
            const ih = oh * s.stride + kh - s.pad, iw = ow * s.stride + kw - s.pad;
            if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) continue;
            for (let ci = 0; ci < s.cin; ci++) {
              m[row * cols + (kh * s.k + kw) * s.cin + ci] =
                x[((n * s.h + ih) * s.w + iw) * s.cin + ci];
            }
          }
        }
      }
    }
  }
  return m;
}

/** Throws unless |a - b| / max(|a|, |b|) < tol everywhere (both exactly 0 passes). */
function assertRelative(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) {
  if (a.length !== b.length) throw new Error(`${what}: ${a.length} vs ${b.length} values`);
  for (let i = 0; i < a.length; i++) {
    const scale = Math.max(Math.abs(a[i]), Math.abs(b[i]));
    const err = scale === 0 ? 0 : Math.abs(a[i] - b[i]) / scale;
    if (!(err < tol)) throw new Error(`${what}[${i}]: ${a[i]} vs ${b[i]} (relative ${err})`);
  }
}

/** Central differences of `loss` along every element of `p` (restored afterwards). */
function numericGradient(p: Float64Array, loss: () => number, h = 1e-3): Float64Array {
  const g = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const v = p[i];
    p[i] = v + h;
    const up = loss();
    p[i] = v - h;
    const down = loss();
    p[i] = v;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

Deno.test("convOutputSize follows floor((H + 2 pad - K) / stride) + 1", () => {
  const cases: [number, number, number, number, number][] = [
    [32, 3, 1, 1, 32],
    [32, 3, 2, 1, 16],
    [32, 1, 2, 0, 16],
    [7, 3, 2, 1, 4],
    [7, 1, 2, 0, 4],
    [28, 3, 1, 1, 28],
  ];
  for (const [size, k, stride, pad, want] of cases) {
    const got = convOutputSize(size, k, stride, pad);
    if (got !== want) throw new Error(`convOutputSize(${size}, ${k}, ${stride}, ${pad}) = ${got}`);
  }
});

for (const [name, s] of SHAPES) {
  Deno.test(`conv2d reference ${name}: forward = im2col(x) · W`, () => {
    const rng = freshRng(`conv reference forward ${name}`);
    const { oh, ow } = convOutputShape(s);
    const x = random(rng, s.n * s.h * s.w * s.cin);
    const w = random(rng, s.k * s.k * s.cin * s.cout);
    const want = matmul(im2col(x, s), w, s.n * oh * ow, s.cout, s.k * s.k * s.cin);
    assertRelative(conv2dForward(x, w, s), want, 1e-12, `forward ${name}`);
  });

  Deno.test(`conv2d reference ${name}: dx and dW match central differences`, () => {
    const rng = freshRng(`conv reference gradients ${name}`);
    const { oh, ow } = convOutputShape(s);
    const x = random(rng, s.n * s.h * s.w * s.cin);
    const w = random(rng, s.k * s.k * s.cin * s.cout);
    const dy = random(rng, s.n * oh * ow * s.cout);
    const loss = () => dot(dy, conv2dForward(x, w, s));
    assertRelative(conv2dBackwardInput(dy, w, s), numericGradient(x, loss), 1e-6, `dx ${name}`);
    assertRelative(conv2dBackwardWeight(x, dy, s), numericGradient(w, loss), 1e-6, `dW ${name}`);
  });
}
