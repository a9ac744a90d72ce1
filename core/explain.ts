/**
 * Why each parameter tensor is in group S or O (THEORY §1), in words that name the graph's
 * nodes: which normalizations absorb an S weight's scale, and for an O weight where its scale
 * breaks the invariance (the loss, an addition, a bias), from {@link groupRule}'s verdict.
 *
 * @module
 */

import {
  type Graph,
  type Group,
  groupRule,
  type ModelLayout,
  type Node,
  NORMALIZATIONS,
  type ParamTensor,
} from "./graph.ts";

/** One parameter tensor, its group and why. */
export interface TensorExplanation {
  tensor: ParamTensor;
  group: Group;
  /** Short, names nodes: "scale absorbed by bn0", "marked O in the model", ... */
  reason: string;
}

/** Why each of `layout`'s tensors is in its group, in layout order. */
export function explainGroups(layout: ModelLayout): TensorExplanation[] {
  const graph = layout.graph;
  const { dropped } = groupRule(graph);
  const consumers = consumersOf(graph);
  return layout.tensors.map((tensor) => {
    const node = graph.nodes[tensor.node];
    let reason: string;
    switch (tensor.role) {
      case "weight":
        reason = tensor.group === "S"
          ? sReason(graph, consumers, node)
          : oReason(graph, consumers, node, dropped);
        break;
      case "bias":
        reason = `shift added to ${outputOf(graph, node)}: changes the function when scaled ` +
          `(always O)`;
        break;
      case "gamma":
        reason = `scale of ${node.name}'s output: changes the function when scaled (always O)`;
        break;
      case "beta":
        reason = `shift of ${node.name}'s output: changes the function when scaled (always O)`;
        break;
    }
    return { tensor, group: tensor.group, reason };
  });
}

/** Each node's consumers (node ids, in graph order). */
function consumersOf(graph: Graph): number[][] {
  const consumers: number[][] = graph.nodes.map(() => []);
  for (const node of graph.nodes) {
    for (const i of new Set(node.inputs)) consumers[i].push(node.id);
  }
  return consumers;
}

/**
 * Whether `node`'s output carries its input's scale: ReLU, pooling, addition, and a linear or
 * conv without bias (whatever its own group); not a normalization, a biased linear, the loss.
 */
function carries(node: Node): boolean {
  switch (node.op.kind) {
    case "relu":
    case "maxpool2":
    case "avgpool":
    case "add":
    case "conv":
      return true;
    case "linear":
      return !node.op.bias;
    default:
      return false;
  }
}

/** "bn0", "bn0 and bn1", "a, b and c", "a, b and 5 more". */
function nameList(names: string[], shown = 3): string {
  if (names.length <= 1) return names.join("");
  if (names.length <= shown) return `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
  return `${names.slice(0, shown - 1).join(", ")} and ${names.length - shown + 1} more`;
}

/** "head's output (the logits)" or "fc2's output". */
function outputOf(graph: Graph, node: Node): string {
  return node.id === graph.logits ? `the logits (${node.name}'s output)` : `${node.name}'s output`;
}

/**
 * An S weight: the normalizations that absorb its scale, found by walking forward through the
 * nodes that carry it; the additions passed on the way make the invariance a joint one.
 */
function sReason(graph: Graph, consumers: number[][], node: Node): string {
  const norms: number[] = [], adds: number[] = [];
  const seen = new Set<number>([node.id]);
  const stack = [...consumers[node.id]];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const next = graph.nodes[id];
    if (NORMALIZATIONS.has(next.op.kind)) norms.push(id);
    else if (carries(next)) {
      if (next.op.kind === "add") adds.push(id);
      stack.push(...consumers[id]);
    }
  }
  const names = (ids: number[]) => ids.sort((a, b) => a - b).map((i) => graph.nodes[i].name);
  const op = node.op;
  const marked = (op.kind === "linear" || op.kind === "conv") && op.group === "S"
    ? "marked S in the model; "
    : "";
  const absorbed = norms.length
    ? `scale absorbed by ${nameList(names(norms))}`
    : "no normalization reads its scale";
  const joint = adds.length
    ? `, jointly with the weights it meets at ${nameList(names(adds))}`
    : "";
  return marked + absorbed + joint;
}

/** An O weight: the user's mark, or where its scale broke the invariance ({@link groupRule}). */
function oReason(
  graph: Graph,
  consumers: number[][],
  node: Node,
  dropped: Map<number, number | undefined>,
): string {
  if (!dropped.has(node.id)) return "not scale invariant";
  const atId = dropped.get(node.id);
  if (atId === undefined) return "marked O in the model";
  const at = graph.nodes[atId];
  if (atId === node.id) {
    const logits = node.id === graph.logits ? "; its output is the logits" : "";
    return `a bias is added to its output before any normalization${logits}`;
  }
  if (at.op.kind === "add") return addReason(graph, consumers, node, at);
  const target = at.op.kind === "softmax_xent" ? graph.logits : atId;
  const path = scalePath(graph, consumers, node.id, target);
  const route = path ? `: ${path.map((i) => graph.nodes[i].name).join(" → ")}` : "";
  if (at.op.kind === "softmax_xent" || atId === graph.logits) {
    return `its scale reaches the loss without a normalization${route}`;
  }
  return `its scale reaches ${at.name}'s bias without a normalization${route}`;
}

/** An O weight dropped at addition `add`: the input its scale does not reach. */
function addReason(graph: Graph, consumers: number[][], node: Node, add: Node): string {
  const reached = add.inputs.map((i) => scalePath(graph, consumers, node.id, i) !== undefined);
  const others = add.inputs.filter((_, k) => !reached[k]).map((i) => graph.nodes[i].name);
  if (others.length === 1) {
    return `scaling it alone would unbalance ${add.name} (its other input, ${others[0]}, ` +
      `does not scale with it)`;
  }
  const inputs = nameList(add.inputs.map((i) => graph.nodes[i].name));
  return `scaling it alone would unbalance ${add.name} (its inputs ${inputs} do not scale alike)`;
}

/**
 * A shortest path of node ids from `from` to `to` whose nodes after `from` and before `to` all
 * carry the scale (no normalization, no bias on it); undefined when there is none.
 */
function scalePath(
  graph: Graph,
  consumers: number[][],
  from: number,
  to: number,
): number[] | undefined {
  const previous = new Map<number, number>([[from, -1]]);
  const queue = [from];
  for (let head = 0; head < queue.length; head++) {
    const id = queue[head];
    if (id === to) {
      const path: number[] = [];
      for (let i = id; i !== -1; i = previous.get(i)!) path.push(i);
      return path.reverse();
    }
    if (id !== from && !carries(graph.nodes[id])) continue;
    for (const next of consumers[id]) {
      if (previous.has(next)) continue;
      previous.set(next, id);
      queue.push(next);
    }
  }
  return undefined;
}
