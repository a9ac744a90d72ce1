/**
 * `deno task across`: the same training job on two WebGPU implementations (or adapters), row by
 * row. Each job runs `main.ts` in a child process per side (one process holds one GPU) with
 * JSON Lines on stdout; the losses of every run are compared step by step. Float32 kernels may
 * round differently under another compiler (contraction, reordering), so agreement is a
 * tolerance: 1e-5 relative in f32, 1e-12 in df64 (`--rtol` overrides it).
 *
 * A float32 run is chaotic: a one-ulp difference grows by orders of magnitude within tens of
 * steps (the conv nets pass 1e-5 within 5 steps), so no two roundings agree to 1e-5 over a whole
 * run, and an implementation's rounding is one such difference. A float32 job therefore also
 * runs A1, A's one-ulp twin, and is judged over the steps before chaos: those at which A1 is
 * still within the tolerance of A on the first side. Past them, a difference between the
 * implementations is indistinguishable from one ulp. df64 is judged over every step.
 * Prints one line per job and a JSON summary (stdout); exits 1 when a job disagrees or fails.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { z } from "zod";
import { GPU_PERMISSIONS } from "../shaders/webgpu.ts";

const HELP = `Usage: deno task across [flags] [-- train flags]
Runs one training job per model and precision on two WebGPU sides and compares the losses of
every run at every step (child processes; JSON Lines).

  --sides A,B        two sides, each IMPLEMENTATION or IMPLEMENTATION:ADAPTER (default deno,dawn)
  --models LIST      mlp, cnn, preresnet (PreResNet-8) (default mlp,cnn,preresnet)
  --precisions LIST  f32, df64 (default f32,df64)
  --steps N          steps per job (default 30)
  --rtol X           relative tolerance on the losses (default 1e-5 in f32, 1e-12 in df64);
                     f32 jobs also run A1 and are judged before A1 leaves A by it (chaos)
  --out DIR          also keep each side's rows and stderr there
  --help             this text`;

/** Where a job runs: an implementation and, optionally, an adapter. */
interface Side {
  webgpu: string;
  adapter?: string;
}

/** How two sides' losses compare, step by step. */
export interface LossComparison {
  /** Largest |a - b| / |b| over every run's loss at every step. */
  maxRelLoss: number;
  /** The first step at which some run's losses differ by more than the tolerance (null: none). */
  firstStepOver: number | null;
  /**
   * The first step at which, on the first side, A1's loss differs from A's by more than the
   * tolerance (null: never, or no A1): where this job's chaos floor passes the tolerance.
   */
  chaosStep: number | null;
  /** Largest relative difference over the steps before `chaosStep` (all steps when null). */
  maxRelBeforeChaos: number;
}

/** One job's comparison. */
export interface AcrossResult extends LossComparison {
  model: string;
  precision: string;
  steps: number;
  rtol: number;
  /** f32: `maxRelBeforeChaos` <= rtol; df64: `maxRelLoss` <= rtol. */
  ok: boolean;
  /** Seconds each side took, wall clock (child start to exit). */
  seconds: [number, number];
  adapters: [string, string];
}

const DEFAULT_RTOL: Record<string, number> = { f32: 1e-5, df64: 1e-12 };
const MODEL_FLAGS: Record<string, string[]> = {
  mlp: ["--model", "mlp"],
  cnn: ["--model", "cnn"],
  preresnet: ["--model", "preresnet", "--depth", "8"],
};

const rowSchema = z.record(z.string(), z.unknown());

/** Runs `main.ts` on `side`; returns its JSONL rows, its adapter line and the seconds taken. */
async function train(side: Side, args: string[], keep?: string) {
  const flags = ["--webgpu", side.webgpu, ...(side.adapter ? ["--adapter", side.adapter] : [])];
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...GPU_PERMISSIONS,
      new URL("../main.ts", import.meta.url).pathname,
      ...args,
      ...flags,
      "--format",
      "jsonl",
      "--quiet",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - started) / 1000;
  const text = new TextDecoder().decode(out.stdout);
  const log = new TextDecoder().decode(out.stderr);
  if (keep) {
    await Deno.writeTextFile(`${keep}.jsonl`, text);
    await Deno.writeTextFile(`${keep}.log`, log);
  }
  if (!out.success) {
    throw new Error(`${side.webgpu}: ${log.trim().split("\n").at(-1) ?? `exit ${out.code}`}`);
  }
  const rows = text.trim().split("\n").map((l) => rowSchema.parse(JSON.parse(l)));
  const adapter = log.match(/^adapter: (.*)$/m)?.[1] ?? "unknown";
  return { rows, adapter, seconds };
}

/** |x - y| / |y|; NaN or a non-number counts as infinitely far. */
function relative(x: unknown, y: unknown, where: string): number {
  if (typeof x !== "number" || typeof y !== "number") {
    throw new Error(`${where}: ${x} and ${y} are not both numbers`);
  }
  const rel = Math.abs(x - y) / Math.abs(y);
  return Number.isNaN(rel) ? Infinity : rel;
}

/**
 * Compares the `*.loss` fields of matching rows of two sides at tolerance `rtol`, and finds
 * where the first side's A1 leaves A by more than `rtol` (see the module's note on chaos).
 */
export function compareLosses(
  a: Record<string, unknown>[],
  b: Record<string, unknown>[],
  rtol: number,
): LossComparison {
  if (a.length !== b.length || a.length === 0) {
    throw new Error(`the sides wrote ${a.length} and ${b.length} rows`);
  }
  const result: LossComparison = {
    maxRelLoss: 0,
    firstStepOver: null,
    chaosStep: null,
    maxRelBeforeChaos: 0,
  };
  for (const [i, row] of a.entries()) {
    const keys = Object.keys(row).filter((k) => k.endsWith(".loss"));
    if (keys.length === 0) throw new Error(`row ${i}: no loss columns`);
    const step = typeof row.step === "number" ? row.step : i;
    if (result.chaosStep === null && "A1.loss" in row) {
      if (relative(row["A1.loss"], row["A.loss"], `row ${i} A1`) > rtol) result.chaosStep = step;
    }
    const worst = Math.max(...keys.map((k) => relative(row[k], b[i][k], `row ${i} ${k}`)));
    result.maxRelLoss = Math.max(result.maxRelLoss, worst);
    if (worst > rtol) result.firstStepOver ??= step;
    if (result.chaosStep === null) {
      result.maxRelBeforeChaos = Math.max(result.maxRelBeforeChaos, worst);
    }
  }
  return result;
}

/** One job's line: the judged difference, where it passed the tolerance, and the chaos floor. */
export function describe(r: AcrossResult): string {
  const e = (x: number) => x.toExponential(2);
  const over = r.firstStepOver === null ? "" : `, above ${r.rtol} from step ${r.firstStepOver}`;
  const judged = r.precision === "f32"
    ? `before chaos (A1 leaves A by ${r.rtol} at step ${r.chaosStep ?? "never"}) ${
      e(r.maxRelBeforeChaos)
    }, over all ${r.steps} steps ${e(r.maxRelLoss)}${over}`
    : `${e(r.maxRelLoss)}${over}`;
  return `max relative loss difference ${judged} (limit ${r.rtol}) ${r.ok ? "ok" : "FAILED"}; ` +
    r.adapters.map((a, i) => `${a} ${r.seconds[i].toFixed(1)} s`).join(", ");
}

function parseSide(text: string): Side {
  const [webgpu, ...rest] = text.split(":");
  return { webgpu, adapter: rest.length ? rest.join(":") : undefined };
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      sides: { type: "string", default: "deno,dawn" },
      models: { type: "string", default: "mlp,cnn,preresnet" },
      precisions: { type: "string", default: "f32,df64" },
      steps: { type: "string", default: "30" },
      rtol: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const sides = values.sides.split(",").map(parseSide);
  if (sides.length !== 2) throw new Error(`--sides: expected two sides, got ${values.sides}`);
  const steps = z.coerce.number().int().min(1).parse(values.steps);
  if (values.out) await Deno.mkdir(values.out, { recursive: true });
  const results: AcrossResult[] = [];
  for (const model of values.models.split(",")) {
    if (!MODEL_FLAGS[model]) throw new Error(`--models: unknown model ${model}`);
    for (const precision of values.precisions.split(",")) {
      const rtol = values.rtol ? Number(values.rtol) : DEFAULT_RTOL[precision];
      if (!(rtol > 0)) throw new Error(`--precisions: no tolerance for ${precision}`);
      const args = [...MODEL_FLAGS[model], "--precision", precision, "--steps", `${steps}`];
      // f32 is judged before chaos, which A1 (A's one-ulp twin) shows.
      args.push("--runs", precision === "f32" ? "A,B,A1" : "A,B", ...positionals);
      const keep = (s: Side) =>
        values.out && `${values.out}/${model}-${precision}-${s.webgpu}${s.adapter ?? ""}`;
      const [a, b] = [
        await train(sides[0], args, keep(sides[0]) || undefined),
        await train(sides[1], args, keep(sides[1]) || undefined),
      ];
      const comparison = compareLosses(a.rows, b.rows, rtol);
      const judged = precision === "f32" ? comparison.maxRelBeforeChaos : comparison.maxRelLoss;
      const result: AcrossResult = {
        model,
        precision,
        steps,
        ...comparison,
        rtol,
        ok: judged <= rtol,
        seconds: [a.seconds, b.seconds],
        adapters: [a.adapter, b.adapter],
      };
      results.push(result);
      console.error(`${model} ${precision}: ${describe(result)}`);
    }
  }
  console.log(JSON.stringify(results, null, 2));
  return results.every((r) => r.ok) ? 0 : 1;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`error: ${(e as Error).message.split("\n")[0]}`);
    Deno.exit(1);
  }
}
