import { forward, forwardBackward, ReferenceTrainer } from "./trainer.ts";
import { dot, perturbSign } from "./ops.ts";
import type { ModelLayout } from "../core/graph.ts";
import { initParams } from "../core/init.ts";
import { createRng } from "../core/prng.ts";
import { RunPlan } from "../core/runs.ts";
import { cnnLayout, mlpLayout, preresnetLayout, testRunsSpec } from "../core/test_fixtures.ts";

const LAYOUT = mlpLayout([20, 16, 12, 5]);
const ROWS = 16;

/** Gaussian inputs, labels from a random linear teacher: no dependence on the data loader. */
function batch(seed: number, rows: number) {
  const rng = createRng(seed);
  const teacher = Float64Array.from({ length: 20 * 5 }, () => rng.normal());
  const x = Float64Array.from({ length: rows * 20 }, () => rng.normal());
  const y = Float64Array.from({ length: rows }, (_, i) => {
    let best = 0, arg = 0;
    for (let c = 0; c < 5; c++) {
      let s = 0;
      for (let k = 0; k < 20; k++) s += x[i * 20 + k] * teacher[k * 5 + c];
      if (c === 0 || s > best) (best = s), (arg = c);
    }
    return arg;
  });
  return { x, y };
}

/** PyTorch init with the BN affine parameters randomised too, so their gradients matter. */
function params(layout: ModelLayout, seed: number): Float64Array {
  const p = initParams(layout, seed), rng = createRng(seed + 100);
  for (const t of layout.tensors) {
    if (t.role === "gamma") {
      for (let i = 0; i < t.size; i++) p[t.offset + i] = rng.uniform(0.5, 1.5);
    }
    if (t.role === "beta") {
      for (let i = 0; i < t.size; i++) p[t.offset + i] = rng.uniform(-0.5, 0.5);
    }
  }
  return p;
}

/**
 * Central differences of the mean loss against forwardBackward's gradient, on every element
 * of every tensor (or `sample` random elements of each, for the convolutional models).
 */
function finiteDifferences(
  layout: ModelLayout,
  rows: number,
  eps: number,
  sample?: number,
): number {
  const p = params(layout, 7), rng = createRng(8), h = 1e-5;
  const x = Float64Array.from({ length: rows * layout.inputSize }, () => rng.normal());
  const y = Float64Array.from({ length: rows }, () => rng.int(layout.classes));
  const loss = () => forwardBackward(layout, p, x, y, rows, eps).loss;
  const { grad } = forwardBackward(layout, p, x, y, rows, eps);
  let worst = 0;
  for (const t of layout.tensors) {
    const picks = sample && sample < t.size
      ? Array.from({ length: sample }, () => rng.int(t.size))
      : [...Array(t.size).keys()];
    const fd = new Float64Array(picks.length), g = new Float64Array(picks.length);
    picks.forEach((i, n) => {
      const k = t.offset + i, v = p[k];
      p[k] = v + h;
      const up = loss();
      p[k] = v - h;
      const down = loss();
      p[k] = v;
      fd[n] = (up - down) / (2 * h);
      g[n] = grad[k];
    });
    const diff = fd.map((v, i) => v - g[i]);
    const rel = Math.sqrt(dot(diff, diff) / dot(g, g));
    const maxG = Math.max(...g.map(Math.abs));
    const maxDiff = Math.max(...diff.map(Math.abs));
    if (!(rel < 1e-6) || !(maxDiff < 1e-6 * maxG)) {
      throw new Error(`${t.name}: relative error ${rel}, worst element ${maxDiff} of ${maxG}`);
    }
    worst = Math.max(worst, rel);
  }
  return worst;
}

for (const eps of [1e-5, 0]) {
  Deno.test(`forwardBackward mlp: central differences on every tensor (eps ${eps})`, () => {
    // Measured: worst tensor relative error 6.1e-10 (eps 1e-5) and 7.1e-10 (eps 0).
    const worst = finiteDifferences(LAYOUT, ROWS, eps);
    console.log(`mlp eps ${eps}: worst relative error ${worst.toExponential(2)}`);
  });
}

Deno.test("forwardBackward cnn and preresnet-8: central differences on every tensor", () => {
  for (
    const [name, layout, rows] of [
      ["cnn", cnnLayout(9, 2, 3), 3],
      ["preresnet-8 width 4", preresnetLayout(8, 4, 8, 3, 4), 3],
    ] as const
  ) {
    const worst = finiteDifferences(layout, rows, 1e-5, 6);
    console.log(`${name}: worst relative error ${worst.toExponential(2)}`);
  }
});

Deno.test("forwardBackward: scale invariance of S (eps 0) and Lemma 1", () => {
  const p = params(LAYOUT, 9), { x, y } = batch(10, ROWS);
  const base = forwardBackward(LAYOUT, p, x, y, ROWS, 0);
  for (const c of [2, 3.7]) {
    const q = p.slice();
    for (let i = 0; i < LAYOUT.sEnd; i++) q[i] *= c;
    const scaled = forwardBackward(LAYOUT, q, x, y, ROWS, 0);
    let worst = 0, gradWorst = 0;
    base.logits.forEach((v, i) => (worst = Math.max(worst, Math.abs(scaled.logits[i] - v))));
    // Lemma 1: grad L(c w) = grad L(w) / c on S; O's gradient unchanged.
    base.grad.forEach((g, i) => {
      const expect = i < LAYOUT.sEnd ? g / c : g;
      gradWorst = Math.max(gradWorst, Math.abs(scaled.grad[i] - expect));
    });
    const maxGrad = Math.max(...base.grad.map(Math.abs));
    // Measured: 0 for c = 2 (a power of two scales exactly); 3.9e-16 (logits) and 4.8e-16
    // (gradient, relative to its largest element) for c = 3.7.
    if (!(worst < 1e-12)) throw new Error(`x${c}: logits move by ${worst}`);
    if (!(gradWorst < 1e-12 * maxGrad)) throw new Error(`x${c}: gradient off by ${gradWorst}`);
  }
  for (const t of LAYOUT.tensors.filter((t) => t.group === "S")) {
    const w = p.subarray(t.offset, t.offset + t.size);
    const g = base.grad.subarray(t.offset, t.offset + t.size);
    const cos = dot(g, w) / Math.sqrt(dot(g, g) * dot(w, w));
    // Measured: |cos| 2.3e-17.
    if (!(Math.abs(cos) < 1e-12)) throw new Error(`${t.name}: <grad, w> has cosine ${cos}`);
  }
});

Deno.test("forward: training mode matches forwardBackward; eval mode uses the stats", () => {
  const p = params(LAYOUT, 11), { x, y } = batch(12, ROWS);
  const train = forward(LAYOUT, p, x, ROWS, 1e-5);
  const fb = forwardBackward(LAYOUT, p, x, y, ROWS, 1e-5).logits;
  if (train.some((v, i) => v !== fb[i])) throw new Error("training-mode logits differ");
  // Eval mode with the batch's own statistics (biased variance) equals training mode.
  const stats = {
    mean: new Float64Array(LAYOUT.statsSize),
    variance: new Float64Array(LAYOUT.statsSize),
    mode: "plain" as const,
  };
  const { tape } = forwardBackward(LAYOUT, p, x, y, ROWS, 1e-5);
  for (const bn of LAYOUT.batchNorms) {
    stats.mean.set(tape.caches.get(bn.node)!.mean, bn.offset);
    stats.variance.set(tape.caches.get(bn.node)!.variance, bn.offset);
  }
  const evalLogits = forward(LAYOUT, p, x, ROWS, 1e-5, stats);
  const worst = Math.max(...evalLogits.map((v, i) => Math.abs(v - train[i])));
  if (!(worst < 1e-12)) throw new Error(`eval with batch statistics differs by ${worst}`);
});

const SPEC = testRunsSpec({ runs: ["A", "B", "A1", "C"], explr: "closed" });

Deno.test("ReferenceTrainer: initial state and one step by hand", () => {
  const init = initParams(LAYOUT, 3), plan = new RunPlan(SPEC);
  const factor = plan.initialBufferFactor(1);
  const tr = new ReferenceTrainer(LAYOUT, plan, init, { bnMomentum: 0.1, runningStats: "plain" });
  for (let i = 0; i < LAYOUT.size; i++) {
    if (tr.params[0][i] !== init[i] || tr.params[1][i] !== init[i]) throw new Error("A/B init");
    if (tr.params[2][i] !== init[i] * (1 + 2 ** -23)) throw new Error("A1 init");
    if (tr.bufs[1][i] !== (i < LAYOUT.sEnd ? factor * init[i] : 0)) throw new Error("B buffer");
    if (tr.bufs[0][i] !== 0) throw new Error("A buffer");
  }
  const { x, y } = batch(4, ROWS);
  const { steps, loss, correct } = tr.step(x, y, ROWS);
  // Run A by hand: g = grad + wd w, buf = g, w -= lr buf on S; the same with (lrO, wdO) on O.
  const fb = forwardBackward(LAYOUT, init, x, y, ROWS, 1e-5);
  if (loss[0] !== fb.loss || correct[0] !== fb.correct) throw new Error("loss/correct of A");
  for (let i = 0; i < LAYOUT.size; i++) {
    const [lr, wd] = i < LAYOUT.sEnd ? [0.1, 5e-3] : [0.05, 1e-4];
    const expect = init[i] - lr * (fb.grad[i] + wd * init[i]);
    if (Math.abs(tr.params[0][i] - expect) > 1e-15) throw new Error(`A param ${i}`);
  }
  if (steps.length !== 4 || steps[1].cPred <= 1) throw new Error("plan steps");
  // Running statistics: mean 0.1 * batch mean, var 0.9 + 0.1 * unbiased batch variance.
  if (!tr.stats[0].variance.every((v) => v > 0.9)) throw new Error("running variance");
});

Deno.test("ReferenceTrainer: A2 is A with S multiplied by 1 + 2^-23 * perturbSign after the update", () => {
  const plan = new RunPlan({ ...SPEC, runs: ["A", "A2"] });
  const seed = 12345;
  const tr = new ReferenceTrainer(LAYOUT, plan, initParams(LAYOUT, 1), {
    bnMomentum: 0.1,
    runningStats: "plain",
    seed,
  });
  const { x, y } = batch(5, ROWS);
  let plus = 0;
  for (let t = 0; t < 2; t++) {
    const a = tr.params[0].slice(), a2 = tr.params[1].slice();
    const buf = tr.bufs[1].slice();
    tr.step(x, y, ROWS);
    // Replay A2's update from its own state, then the perturbation.
    const fb = forwardBackward(LAYOUT, a2, x, y, ROWS, 1e-5);
    for (let i = 0; i < LAYOUT.size; i++) {
      const s = i < LAYOUT.sEnd;
      const [lr, wd] = s ? [0.1, 5e-3] : [0.05, 1e-4];
      const b = 0.9 * buf[i] + (fb.grad[i] + wd * a2[i]); // sgdStep's association
      let want = a2[i] - lr * b;
      if (s) {
        const sign = perturbSign(seed, t, 1, i);
        if (sign > 0) plus++;
        want *= 1 + 2 ** -23 * sign;
      }
      if (tr.params[1][i] !== want) throw new Error(`A2 step ${t} param ${i}`);
    }
    if (t === 0 && tr.params[0].some((v, i) => i >= LAYOUT.sEnd && v !== tr.params[1][i])) {
      throw new Error("A and A2 differ on O after one step");
    }
    if (t === 0 && a.some((v, i) => v !== a2[i])) throw new Error("A2 starts from A's weights");
  }
  if (!(plus > 0.3 * 2 * LAYOUT.sEnd && plus < 0.7 * 2 * LAYOUT.sEnd)) {
    throw new Error(`${plus} +1 signs`);
  }
});
