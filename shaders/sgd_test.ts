import { hostBytes, readFloats, RUN_SCALARS, runDispatches, uploadBuffer, view } from "./gpu.ts";
import { gpuTest } from "./test_gpu.ts";
import { sgdStep } from "../reference/ops.ts";
import { assertClose, freshRng, stackedFloats } from "../core/test_util.ts";
import { sgdKernel } from "./sgd.ts";

gpuTest(
  "sgdKernel: 3 steps, per-run per-group lr/wd/shrink/momentum, vs float64 sgdStep",
  async (gpu) => {
    const rng = freshRng("sgd");
    // [runs, size, sEnd]; the last one exceeds 4096 workgroups, so the grid-stride loop runs.
    const shapes = [[1, 1, 0], [3, 7, 3], [3, 1000, 777], [3, 70001, 50003], [1, 1100001, 1100001]];
    for (const [runs, size, sEnd] of shapes) {
      const off = 2, stride = size + 3; // NaN gaps around every run catch stray writes
      const stacked = () => stackedFloats(rng, runs, size, stride, off);
      const p = stacked(), buf = stacked();
      const bufP = uploadBuffer(gpu, p), bufM = uploadBuffer(gpu, buf);
      const bufG = uploadBuffer(gpu, new Float32Array(p.length));
      const scalars = new Float32Array(runs * RUN_SCALARS.words);
      const bufS = uploadBuffer(gpu, scalars);
      const dispatch = sgdKernel(gpu, {
        runs,
        size,
        sEnd,
        params: view(bufP, stride, off),
        grads: view(bufG, stride, off),
        bufs: view(bufM, stride, off),
        scalars: bufS,
      });
      const slice = (a: Float32Array, r: number): Float32Array =>
        a.subarray(off + r * stride, off + r * stride + size);
      // float64 state from the same float32 start
      const refP = Array.from({ length: runs }, (_, r) => Float64Array.from(slice(p, r)));
      const refB = Array.from({ length: runs }, (_, r) => Float64Array.from(slice(buf, r)));
      for (let step = 0; step < 3; step++) {
        const grads = stacked();
        for (let r = 0; r < runs; r++) {
          const s = scalars.subarray(r * RUN_SCALARS.words, (r + 1) * RUN_SCALARS.words);
          s.fill(NaN); // fields the kernel must not read
          s[RUN_SCALARS.lrS] = rng.uniform(0.01, 0.5);
          s[RUN_SCALARS.wdS] = rng.uniform(0, 0.05);
          s[RUN_SCALARS.shrinkS] = rng.uniform(0, 0.02);
          s[RUN_SCALARS.lrO] = rng.uniform(0.01, 0.5);
          s[RUN_SCALARS.wdO] = rng.uniform(0, 0.05);
          s[RUN_SCALARS.shrinkO] = r === 0 ? 0 : rng.uniform(0, 0.02);
          s[RUN_SCALARS.momentum] = r === 1 ? 0 : rng.uniform(0.5, 0.95);
        }
        // queue writes are ordered with submits, as in the trainer
        gpu.device.queue.writeBuffer(bufS, 0, scalars);
        gpu.device.queue.writeBuffer(bufG, 0, hostBytes(grads));
        runDispatches(gpu, [dispatch]);
        for (let r = 0; r < runs; r++) {
          const s = scalars.subarray(r * RUN_SCALARS.words); // f32-rounded, as the GPU sees them
          const m = s[RUN_SCALARS.momentum], g = slice(grads, r);
          sgdStep(refP[r].subarray(0, sEnd), g.subarray(0, sEnd), refB[r].subarray(0, sEnd), {
            lr: s[RUN_SCALARS.lrS],
            wd: s[RUN_SCALARS.wdS],
            shrink: s[RUN_SCALARS.shrinkS],
            momentum: m,
          });
          sgdStep(refP[r].subarray(sEnd), g.subarray(sEnd), refB[r].subarray(sEnd), {
            lr: s[RUN_SCALARS.lrO],
            wd: s[RUN_SCALARS.wdO],
            shrink: s[RUN_SCALARS.shrinkO],
            momentum: m,
          });
        }
      }
      const gotP = await readFloats(gpu, bufP, p.length);
      const gotB = await readFloats(gpu, bufM, p.length);
      for (let r = 0; r < runs; r++) {
        // |p|, |buf| <= ~5 after 3 steps; f32 rounding of a few operations per step
        const what = `R=${runs} size=${size} sEnd=${sEnd} run ${r}`;
        assertClose(slice(gotP, r), refP[r], 2e-6, 2e-6, `${what} params`);
        assertClose(slice(gotB, r), refB[r], 2e-6, 2e-6, `${what} bufs`);
      }
      for (let k = 0; k < p.length; k++) {
        const inRun = k >= off && (k - off) % stride < size;
        if (!inRun && !(Number.isNaN(gotP[k]) && Number.isNaN(gotB[k]))) {
          throw new Error(`sgd wrote outside the runs at element ${k}`);
        }
      }
      for (const b of [bufP, bufM, bufG, bufS]) b.destroy();
    }
  },
);

gpuTest(
  "sgdKernel with previous: stores S's weights before the step, nothing else; the step is unchanged",
  async (gpu) => {
    const rng = freshRng("sgd previous");
    for (const [runs, size, sEnd] of [[1, 5, 5], [3, 1000, 777], [3, 70001, 50003]]) {
      const off = 2, stride = size + 3;
      const p = stackedFloats(rng, runs, size, stride, off);
      const buf = stackedFloats(rng, runs, size, stride, off);
      const grads = stackedFloats(rng, runs, size, stride, off);
      const scalars = new Float32Array(runs * RUN_SCALARS.words);
      for (let r = 0; r < runs; r++) {
        const s = scalars.subarray(r * RUN_SCALARS.words);
        s[RUN_SCALARS.lrS] = s[RUN_SCALARS.lrO] = 0.1;
        s[RUN_SCALARS.wdS] = s[RUN_SCALARS.wdO] = 5e-4;
        s[RUN_SCALARS.momentum] = 0.9;
      }
      const prevStride = sEnd + 1;
      const prev = new Float32Array(runs * prevStride + 1).fill(NaN);
      const run = async (previous: boolean) => {
        const bufP = uploadBuffer(gpu, p), bufM = uploadBuffer(gpu, buf);
        const bufPrev = uploadBuffer(gpu, prev);
        runDispatches(gpu, [sgdKernel(gpu, {
          runs,
          size,
          sEnd,
          params: view(bufP, stride, off),
          grads: view(uploadBuffer(gpu, grads), stride, off),
          bufs: view(bufM, stride, off),
          scalars: uploadBuffer(gpu, scalars),
          previous: previous ? view(bufPrev, prevStride, 1) : undefined,
        })]);
        return {
          params: await readFloats(gpu, bufP, p.length),
          previous: await readFloats(gpu, bufPrev, prev.length),
        };
      };
      const plain = await run(false), saving = await run(true);
      if (saving.params.some((v, i) => !Object.is(v, plain.params[i]))) {
        throw new Error("storing the previous weights changed the step");
      }
      for (let k = 0; k < prev.length; k++) {
        const r = Math.floor((k - 1) / prevStride), i = (k - 1) % prevStride;
        const inS = k >= 1 && r < runs && i < sEnd;
        const want = inS ? p[off + r * stride + i] : NaN;
        if (!Object.is(saving.previous[k], want)) {
          throw new Error(
            `R=${runs} size=${size}: previous[${k}] = ${saving.previous[k]}, want ${want}`,
          );
        }
      }
    }
  },
);
