/**
 * The text `deno task inspect` prints for a model: a header with the parameter counts, the graph
 * node by node (op, inputs, shape, parameters, FLOPs of a training step), the S/O table with
 * the reason of each tensor's group (core/explain.ts), and the startup invariance check's
 * result when given. Pure formatting: plain text in aligned, fixed-width columns.
 *
 * @module
 */

import { explainGroups } from "../core/explain.ts";
import { nodeTrainStepFlops, trainStepFlops } from "../core/flops.ts";
import { type ModelLayout, type Node, opLabel } from "../core/graph.ts";
import { INVARIANCE_TOLERANCE } from "../reference/invariance.ts";
import { mib } from "./summary.ts";

/**
 * The startup invariance check's outcome (reference/invariance.ts's measure): logits with S×2
 * against the logits, float64, eps 0.
 */
export interface InvarianceResult {
  /** max |logits(S×2) - logits|. */
  error: number;
  /** max |logits|. */
  scale: number;
  /** Whether it passed; by default error <= INVARIANCE_TOLERANCE · max(1, scale), as the check. */
  passed?: boolean;
}

/** What to print besides the model: FLOPs for `rows` examples a step, the check's result. */
export interface InspectionOptions {
  rows: number;
  invariance?: InvarianceResult;
  /** Planned GPU memory of the step (every buffer, bytes) for `runs` runs and for one. */
  memory?: { bytes: number; perRunBytes: number; runs: number };
}

/** The inspection text of `layout`, lines ending in "\n". */
export function inspectionText(layout: ModelLayout, opts: InspectionOptions): string {
  const { graph, tensors } = layout;
  const s = tensors.filter((t) => t.group === "S"), o = tensors.filter((t) => t.group === "O");
  const sum = (ts: typeof tensors) => ts.reduce((n, t) => n + t.size, 0);
  const lines = [
    `${layout.description}: ${digits(layout.size)} parameters ` +
    `(S ${digits(sum(s))} in ${plural(s.length, "tensor")}, ` +
    `O ${digits(sum(o))} in ${plural(o.length, "tensor")})`,
    "",
    `graph: ${plural(graph.nodes.length, "node")}; FLOPs of one training step of ` +
    `${plural(opts.rows, "example")} (forward, dW, dX; products only)`,
  ];

  const params = new Map<number, number>();
  for (const t of tensors) params.set(t.node, (params.get(t.node) ?? 0) + t.size);
  const nodeRows = graph.nodes.map((node) => [
    String(node.id),
    node.name,
    opText(node),
    node.inputs.map((i) => graph.nodes[i].name).join(", ") || "-",
    node.shape.length ? node.shape.join("x") : "scalar",
    digits(params.get(node.id) ?? 0),
    digits(nodeTrainStepFlops(layout, node, opts.rows)),
  ]);
  const total = ["", "total", "", "", "", digits(layout.size)];
  total.push(digits(trainStepFlops(layout, opts.rows)));
  lines.push(
    ...table(
      ["id", "name", "op", "inputs", "shape", "params", "FLOPs"],
      [...nodeRows, total],
      "rllllrr",
    ),
  );

  lines.push("", "groups (THEORY §1): S = scale-invariant weights, O = everything else");
  const explained = explainGroups(layout).map((e) => [
    e.tensor.name,
    e.tensor.shape.join("x"),
    digits(e.tensor.size),
    e.group,
    e.reason,
  ]);
  lines.push(...table(["tensor", "shape", "size", "group", "reason"], explained, "llrll"));

  if (opts.memory) {
    const { bytes, perRunBytes, runs } = opts.memory;
    lines.push(
      "",
      `GPU memory (planned, every buffer): ${mib(bytes)} for ${runs} runs, ${
        mib(perRunBytes)
      } for one (batch ${opts.rows})`,
    );
  }
  if (opts.invariance) lines.push("", invarianceLine(opts.invariance));
  return lines.map((l) => l + "\n").join("");
}

/** "invariance check (float64, eps 0): logits with S×2 differ by ... : passed". */
export function invarianceLine(r: InvarianceResult): string {
  const passed = r.passed ?? r.error <= INVARIANCE_TOLERANCE * Math.max(1, r.scale);
  return `invariance check (float64, eps 0): logits with S×2 differ by at most ${real(r.error)}` +
    ` (tolerance ${real(INVARIANCE_TOLERANCE * Math.max(1, r.scale))}): ${
      passed ? "passed" : "failed"
    }`;
}

/** A node's op as printed: the label, a linear's outputs and bias, a conv's size and stride. */
function opText(node: Node): string {
  const op = node.op;
  let text = opLabel(op);
  if (op.kind === "linear") text += ` ${op.outputs}${op.bias ? " +bias" : ""}`;
  if (op.kind === "conv") {
    text += ` ${op.outputs} ${op.kernel}x${op.kernel}/${op.stride}`;
    if (op.pad !== Math.floor(op.kernel / 2)) text += ` pad ${op.pad}`;
  }
  if ((op.kind === "batchnorm" || op.kind === "groupnorm") && !op.affine) text += " no affine";
  if ((op.kind === "linear" || op.kind === "conv") && op.group) text += `, marked ${op.group}`;
  return text;
}

/** Rows under a header in columns two spaces apart, `align` "l" or "r" per column. */
function table(header: string[], rows: string[][], align: string): string[] {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? "").length)));
  return all.map((r) =>
    widths.map((w, c) => {
      const cell = r[c] ?? "";
      return align[c] === "r" ? cell.padStart(w) : cell.padEnd(w);
    }).join("  ").trimEnd()
  );
}

/** An integer with thousands separators: 1,234,567. */
export function digits(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** "1 tensor", "3 tensors". */
function plural(n: number, word: string): string {
  return `${digits(n)} ${word}${n === 1 ? "" : "s"}`;
}

/** A real for reading: 0, 3.142, 1.23e-16. */
function real(x: number): string {
  if (x === 0 || !Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a >= 1e-3 && a < 1e6 ? String(Number(x.toPrecision(4))) : x.toExponential(2);
}
