import { preresnetLayout, testRunsSpec } from "../core/test_fixtures.ts";
import { RunPlan } from "../core/runs.ts";
import { freshRng, randomFloats } from "../core/test_util.ts";
import {
  type CheckpointContext,
  checkpointStage,
  checkpointState,
  decodeCheckpoint,
  encodeCheckpoint,
  fromJson,
  toJson,
} from "./checkpoint.ts";
import { checkpointPath, listCheckpoints, OWNER_FILE } from "./checkpoint_dir.ts";
import type { TrainingSnapshot } from "./step.ts";
import { type OutputRow, SummaryTracker } from "./monitor.ts";

const layout = preresnetLayout(8, 4, 8, 3, 10);
const runs = ["A", "B"] as const;
const plan = new RunPlan(testRunsSpec({ runs: [...runs] }));
const lastPlan = plan.next();

const context: CheckpointContext = {
  layout,
  runs: [...runs],
  runningStats: "weightnorm",
  version: "test",
  config: { lr: 0.1, runs: [...runs] },
  dataPosition: (step) => ({ epoch: 0, batch_in_epoch: step + 1 }),
  seeds: { shuffle: 1 },
  tilings: { "conv forward 6x8x8x3->4 k3 s1 p1 R2 f32 align 444": { tm: 4, window: false } },
};

/** A snapshot after `step` with fresh random tensors. */
function snapshot(step: number): TrainingSnapshot {
  const rng = freshRng(`checkpoint ${step}`);
  const R = runs.length, P = layout.size, N = layout.statsSize;
  return {
    kind: "snapshot",
    step,
    epoch: 0,
    lastPlan,
    plan: plan.state,
    stepper: {
      scheduled: [{ run: 1, at: step + 2, factor: 0.25 }],
      rescaleAt: [-1, step + 2],
      nextProbe: 10,
      nextEval: 50,
    },
    diverged: false,
    gpu: {
      params: randomFloats(rng, R * P),
      bufs: randomFloats(rng, R * P),
      runningMean: randomFloats(rng, R * N),
      runningVar: randomFloats(rng, R * N),
    },
  };
}

Deno.test("checkpoint: every tensor, the plan, the stepper and the summary come back bit for bit", () => {
  const snap = snapshot(7);
  const tracker = new SummaryTracker([...runs]);
  tracker.add({ step: 0, "B.dist_maxprob": 3e-7, "B.batch_maxprob": NaN, "A.loss": 2.3 });
  const file = decodeCheckpoint(encodeCheckpoint(context, snap, tracker.state), "ck.safetensors");
  const state = checkpointState(file, layout);
  for (const key of ["params", "bufs", "runningMean", "runningVar"] as const) {
    if (!state[key].every((v, i) => Object.is(v, snap.gpu[key][i]))) {
      throw new Error(`${key} changed`);
    }
  }
  const same = (a: unknown, b: unknown, what: string) => {
    if (toJson(a) !== toJson(b)) throw new Error(`${what}: ${toJson(a)} != ${toJson(b)}`);
  };
  same(file.meta.plan, snap.plan, "plan");
  same(file.meta.stepper, snap.stepper, "stepper");
  same(file.meta.tracker, tracker.state, "summary (NaN kept)");
  same(file.meta.tilings, context.tilings, "tilings");
  if (file.meta.step !== 7 || file.meta.runs.join() !== "A,B") throw new Error("step, runs");
  // Conv weights go out in PyTorch's [out, in, kh, kw]: the stem is 4 x 3 x 3 x 3.
  if (file.tensors.get("A/stem.weight")!.shape.join() !== "4,3,3,3") throw new Error("stem shape");
});

Deno.test("checkpoint: df64 state (F64 values and each pair's lo) comes back bit for bit", () => {
  const rng = freshRng("checkpoint df64");
  const f32 = snapshot(3);
  // Pairs whose lo lies far below hi's last bit: hi + lo is then not a float64, and only the
  // stored lo gives the pair back.
  const pairs = (n: number) => {
    const hi = randomFloats(rng, n), lo = randomFloats(rng, n).map((v, i) => v * 2 ** -40 * hi[i]);
    return { values: Float64Array.from(hi, (h, i) => h + lo[i]), lo };
  };
  const arrays = ["params", "bufs", "runningMean", "runningVar"] as const;
  const [p, b, m, v] = arrays.map((k) => pairs(f32.gpu[k].length));
  const snap: TrainingSnapshot = {
    ...f32,
    gpu: {
      params: p.values,
      bufs: b.values,
      runningMean: m.values,
      runningVar: v.values,
      lo: { params: p.lo, bufs: b.lo, runningMean: m.lo, runningVar: v.lo },
    },
  };
  const bytes = encodeCheckpoint(context, snap, new SummaryTracker([...runs]).state);
  const file = decodeCheckpoint(bytes, "ck.safetensors");
  const state = checkpointState(file, layout, "df64");
  for (const key of arrays) {
    if (!state[key].every((v, i) => Object.is(v, snap.gpu[key][i]))) throw new Error(`${key}`);
    if (!state.lo![key].every((v, i) => Object.is(v, snap.gpu.lo![key][i]))) {
      throw new Error(`${key} lo`);
    }
  }
  if (file.tensors.get("B/stem.weight")!.dtype !== "F64") throw new Error("values are not F64");
  // A float32 trainer refuses it with one line naming the tensor and the dtype.
  let message = "";
  try {
    checkpointState(file, layout, "f32");
  } catch (e) {
    message = (e as Error).message;
  }
  if (!/tensor A\/\S+ is F64, expected F32 \(--precision f32\)/.test(message)) {
    throw new Error(`f32: ${message}`);
  }
});

Deno.test("checkpoint: NaN and infinities survive the metadata's JSON", () => {
  const value = { a: NaN, b: [Infinity, -Infinity, 1e-300], c: "x" };
  if (toJson(fromJson(toJson(value))) !== toJson(value)) throw new Error(toJson(value));
  const back = fromJson(toJson(value)) as typeof value;
  if (!Number.isNaN(back.a) || back.b[0] !== Infinity || back.b[1] !== -Infinity) {
    throw new Error("non-finite numbers lost");
  }
});

Deno.test("checkpointStage: writes step-N files atomically, keeps the newest K, passes rows on", async () => {
  const dir = await Deno.makeTempDir();
  const tracker = new SummaryTracker([...runs]);
  const written: number[] = [];
  const owner = { configHash: "0123456789abcdef", settings: { lr: 0.1 } };
  const stage = checkpointStage({
    dir,
    keep: 2,
    context,
    owner,
    onWritten: (_, s) => written.push(s),
  });
  const rows: OutputRow[] = [];
  const input: OutputRow[] = [3, 7, 11, 15].flatMap((step): OutputRow[] => [
    { kind: "step", values: { step } },
    { kind: "snapshot", snapshot: snapshot(step), tracker: tracker.state },
  ]);
  await ReadableStream.from(input).pipeThrough(stage).pipeTo(
    new WritableStream({ write: (r) => void rows.push(r) }),
  );
  if (written.join() !== "3,7,11,15") throw new Error(`written ${written}`);
  if (rows.some((r) => r.kind === "snapshot") || rows.length !== 4) throw new Error("rows");
  const files = await listCheckpoints(dir);
  if (files.join() !== [checkpointPath(dir, 15), checkpointPath(dir, 11)].join()) {
    throw new Error(`kept ${files}`);
  }
  const all = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  if (all.length !== 3 || !all.includes(OWNER_FILE)) throw new Error(`left: ${all}`); // no tmp
  await Deno.remove(dir, { recursive: true });
});
