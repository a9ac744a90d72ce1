/**
 * The buffer planner with no GPU. On random graphs every pass is recorded twice on a dry GPU,
 * once with a buffer per tensor (the lifetimes, read from which dispatch binds what) and once
 * as the step program records it (the planner's shared slots): no two tensors alive at one
 * dispatch may share a slot, and each slot holds its tensors. On PreResNet-20 the planned
 * buffers are weighed against a buffer per tensor, and a step beyond the limits is refused.
 */

import { GraphBuilder, type ModelLayout, modelLayout, type Tensor } from "../core/graph.ts";
import type { Rng } from "../core/prng.ts";
import { assertThrows, freshRng } from "../core/test_util.ts";
import { buildModel } from "../core/models.ts";
import { boundBuffers, DEFAULT_LIMITS, dryGpu } from "../shaders/dry_gpu.ts";
import { type Dispatch, type Gpu, realBuffer } from "../shaders/gpu.ts";
import { type Pass, type PassMode, recordPass } from "./lowering.ts";
import type { StepBuffers } from "./step_program.ts";
import { GpuTrainer, type TrainerOptions, trainerSetup } from "./trainer.ts";

/** A random small network: a flat MLP, or convolutions with pools, residual adds and norms. */
function randomLayout(rng: Rng): ModelLayout {
  const b = new GraphBuilder(rng.next() < 0.8);
  const norm = (x: Tensor) => {
    const c = x.shape[x.shape.length - 1], k = rng.int(3);
    return k === 0 ? x.bn() : k === 1 ? x.ln() : x.gn(c % 2 === 0 ? 2 : 1);
  };
  let x: Tensor;
  if (rng.next() < 0.3) {
    x = b.input([3 + rng.int(20)]);
    for (let i = 0, n = 1 + rng.int(3); i < n; i++) x = norm(x.linear(2 + rng.int(9))).relu();
  } else {
    x = b.input([4 + rng.int(5), 4 + rng.int(5), 1 + rng.int(3)]);
    x = x.conv(2 * (1 + rng.int(3)), 3);
    for (let i = 0, n = 1 + rng.int(4); i < n; i++) {
      const c = x.shape[2];
      // A ReLU straight after a convolution runs in place.
      const inner = rng.next() < 0.3 ? x.conv(c, 3).relu() : norm(norm(x).relu().conv(c, 3)).relu();
      const branch = inner.conv(c, 3);
      x = rng.next() < 0.7 ? branch.add(x) : branch;
      if (rng.next() < 0.3 && x.shape[0] >= 2 && x.shape[1] >= 2) x = x.maxpool2();
    }
    x = norm(x).relu().avgpool();
  }
  return modelLayout(b.build(x.linear(3, { bias: true }).softmaxCrossEntropy()), "random");
}

/** A trainer's options for `layout`: batch `rows`, a probe of `probeRows`, `runs` runs. */
function options(
  layout: ModelLayout,
  runs: number,
  rows: number,
  probeRows: number,
): TrainerOptions {
  return {
    layout,
    runs,
    batchRows: rows,
    probe: {
      x: new Float32Array(probeRows * layout.inputSize),
      y: new Int32Array(probeRows),
      rows: probeRows,
    },
    bnMomentum: 0.1,
    runningStats: "weightnorm",
    seed: 0,
    inFlight: 2,
  };
}

/**
 * A pass of the trainer's graph recorded as before the planner, a buffer per tensor, over the
 * setup's buffers; returns it with its tensors in allocation order.
 */
function recordUnplanned(
  gpu: Gpu,
  b: StepBuffers,
  opts: TrainerOptions,
  rows: number,
  input: GPUBuffer,
  mode: PassMode,
): { pass: Pass; tensors: GPUBuffer[] } {
  const tensors: GPUBuffer[] = [];
  const pass = recordPass(
    gpu,
    {
      precision: "f32",
      layout: opts.layout,
      runs: opts.runs,
      input,
      labels: b.labels,
      params: b.params,
      grads: b.grads,
      scalars: b.scalars,
      lossStats: { buffer: b.record, offset: 0, runStride: 0 },
      runningMean: b.runningMean,
      runningVar: b.runningVar,
      bnMomentum: 0.1,
    },
    rows,
    mode,
    (elements, label) => {
      const t = realBuffer(gpu, "f32", elements, label);
      tensors.push(t);
      return t;
    },
  );
  return { pass, tensors };
}

/** The pass's dispatches as a step records them: forward then backward. */
const dispatchesOf = (p: { forward: Dispatch[]; backward: Dispatch[] }) => [
  ...p.forward,
  ...p.backward,
];

Deno.test("buffer planner: on random graphs no two tensors alive at one dispatch share a slot", () => {
  const rng = freshRng("buffer planner graphs");
  for (let k = 0; k < 40; k++) {
    const layout = randomLayout(rng);
    const runs = 1 + rng.int(3), rows = 2 + rng.int(6), probeRows = 2 + rng.int(6);
    const opts = options(layout, runs, rows, probeRows);
    const gpu = dryGpu();
    const { b, program } = trainerSetup(gpu, opts);
    const planned = program.phases(rows, {
      meter: false,
      probe: false,
      evalMode: false,
      rescale: false,
    });
    const steps = [
      { mode: "train" as const, input: b.x, rows, recorded: [...planned[1][1], ...planned[3][1]] },
      {
        mode: "eval" as const,
        input: b.evalX,
        rows: probeRows,
        recorded: program.evalChunk().forward,
      },
    ];
    for (const { mode, input, rows: r, recorded } of steps) {
      // The same pass with a buffer per tensor: which dispatches bind each.
      const { pass, tensors: own } = recordUnplanned(gpu, b, opts, r, input, mode);
      const mine = dispatchesOf(pass);
      if (mine.length !== recorded.length) throw new Error(`${mode}: dispatch counts differ`);
      const slotOf = new Map<GPUBuffer, GPUBuffer>(), span = new Map<GPUBuffer, number[]>();
      mine.forEach((d, at) => {
        const theirs = boundBuffers(recorded[at]);
        boundBuffers(d).forEach((buffer, i) => {
          if (!own.includes(buffer)) return;
          const slot = theirs[i];
          if (slotOf.has(buffer) && slotOf.get(buffer) !== slot) throw new Error("slot moved");
          if (slot.size < buffer.size) throw new Error(`${buffer.label} outgrows its slot`);
          slotOf.set(buffer, slot);
          const s = span.get(buffer) ?? [at, at];
          span.set(buffer, [Math.min(s[0], at), Math.max(s[1], at)]);
        });
      });
      for (const [a, [a0, a1]] of span) {
        for (const [c, [c0, c1]] of span) {
          if (a !== c && a0 <= c1 && c0 <= a1 && slotOf.get(a) === slotOf.get(c)) {
            throw new Error(`${mode}: ${a.label} and ${c.label} are alive together in one slot`);
          }
        }
      }
    }
  }
});

Deno.test("buffer planner: PreResNet-20, 3 runs, batch 128: the passes' tensors in under a third of their bytes; a step too large is refused unallocated", () => {
  const layout = buildModel({ model: "preresnet", depth: 20, width: 16 }, {
    inputShape: [28, 28, 1],
    classes: 10,
    affine: true,
  });
  const opts = options(layout, 3, 128, 128);
  const gpu = dryGpu();
  const { b, program } = trainerSetup(gpu, opts);
  // Every pass with a buffer per tensor, as before the planner.
  let unplanned = 0;
  for (
    const [rows, input, mode] of [[128, b.x, "train"], [128, b.probeX, "probe"], [
      128,
      b.probeX,
      "eval",
    ], [128, b.evalX, "eval"]] as const
  ) {
    for (const t of recordUnplanned(gpu, b, opts, rows, input, mode).tensors) unplanned += t.size;
  }
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  console.log(`pooled ${mib(program.pooledBytes)}, unplanned ${mib(unplanned)}`);
  if (!(program.pooledBytes * 3 <= unplanned)) {
    throw new Error(`pooled ${mib(program.pooledBytes)} of ${mib(unplanned)}`);
  }
  const planned = GpuTrainer.plannedMemory(opts);
  if (planned.pooledBytes !== program.pooledBytes || planned.bytes <= planned.pooledBytes) {
    throw new Error(`planned ${JSON.stringify(planned)}`);
  }
  // Batch 8192: the stem's activation alone is 8192·28·28·16·4 B a run, beyond WebGPU's default.
  assertThrows(
    () => GpuTrainer.plannedMemory(options(layout, 3, 8192, 128), DEFAULT_LIMITS),
    "more than the adapter binds (128 MiB): use a smaller --batch-size",
  );
});
