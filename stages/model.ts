/**
 * The model: an MLP with BatchNorm (Linear without bias -> BN -> ReLU, repeated; then a Linear
 * head with bias), described as a layer graph, with every parameter laid out in one flat
 * vector per run and tagged scale-invariant (group S) or not (group O).
 *
 * Layout of the flat parameter vector (the same on the GPU, stacked by run, and in the float64
 * reference): all group-S tensors first, then all group-O tensors. So the optimizer, the norms
 * over S and the Lemma-2 rescale each act on one contiguous range.
 *
 * @module
 */

import { createRng } from "../core/prng.ts";

/** Architecture: `dims` = [input, hidden..., classes]; `affine` = BatchNorm has gamma/beta. */
export interface MlpSpec {
  dims: number[];
  affine: boolean;
}

/** One node of the layer graph. */
export type Layer =
  | { kind: "linear"; inputs: number; outputs: number; bias: boolean }
  | { kind: "batchnorm"; features: number; affine: boolean }
  | { kind: "relu" };

/** Parameter group: S = scale-invariant (THEORY §1), O = everything else. */
export type Group = "S" | "O";

/** One parameter tensor inside the flat vector. */
export interface ParamTensor {
  name: string;
  group: Group;
  /** Element offset inside one run's flat vector. */
  offset: number;
  size: number;
  /** [rows, cols] of a weight (stored inputs×outputs, so forward is X·W), [n] of a vector. */
  shape: number[];
  /** Index of the layer in {@link mlpGraph} that owns it. */
  layer: number;
}

/** A hidden block: its weight (S), BatchNorm affine (O, when present) and width. */
export interface HiddenBlock {
  weight: ParamTensor;
  gamma?: ParamTensor;
  beta?: ParamTensor;
  inputs: number;
  width: number;
  /** Offset of this block's features in the running-statistics vectors. */
  statsOffset: number;
}

/** Where everything lives. */
export interface MlpLayout {
  spec: MlpSpec;
  graph: Layer[];
  tensors: ParamTensor[];
  hidden: HiddenBlock[];
  head: { weight: ParamTensor; bias: ParamTensor; inputs: number; classes: number };
  /** Elements per run. */
  size: number;
  /** Group S is [0, sEnd), group O is [sEnd, size). */
  sEnd: number;
  /** Total hidden features (length of the running mean/var vectors per run). */
  statsSize: number;
}

/** The layer graph of an MLP spec. */
export function mlpGraph(spec: MlpSpec): Layer[] {
  const { dims } = spec;
  if (dims.length < 2 || dims.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new Error(`bad MLP dims ${dims.join("-")}: need input, hidden..., classes >= 1`);
  }
  const graph: Layer[] = [];
  for (let l = 0; l + 2 < dims.length; l++) {
    graph.push({ kind: "linear", inputs: dims[l], outputs: dims[l + 1], bias: false });
    graph.push({ kind: "batchnorm", features: dims[l + 1], affine: spec.affine });
    graph.push({ kind: "relu" });
  }
  graph.push({
    kind: "linear",
    inputs: dims[dims.length - 2],
    outputs: dims[dims.length - 1],
    bias: true,
  });
  return graph;
}

/**
 * Tags a linear layer's weight from the graph: scale-invariant when its output goes straight
 * into a normalisation layer with no bias in between (THEORY §1); everything else is O.
 */
export function weightGroup(graph: Layer[], index: number): Group {
  const layer = graph[index];
  const next = graph[index + 1];
  return layer.kind === "linear" && !layer.bias && next?.kind === "batchnorm" ? "S" : "O";
}

/** Computes the flat layout of `spec`, S tensors first. */
export function mlpLayout(spec: MlpSpec): MlpLayout {
  const graph = mlpGraph(spec);
  type Draft = Omit<ParamTensor, "offset">;
  const drafts: Draft[] = [];
  graph.forEach((layer, i) => {
    if (layer.kind === "linear") {
      drafts.push({
        name: `linear${i}.weight`,
        group: weightGroup(graph, i),
        size: layer.inputs * layer.outputs,
        shape: [layer.inputs, layer.outputs],
        layer: i,
      });
      if (layer.bias) {
        drafts.push({
          name: `linear${i}.bias`,
          group: "O",
          size: layer.outputs,
          shape: [layer.outputs],
          layer: i,
        });
      }
    } else if (layer.kind === "batchnorm" && layer.affine) {
      for (const name of ["gamma", "beta"]) {
        drafts.push({
          name: `bn${i}.${name}`,
          group: "O",
          size: layer.features,
          shape: [layer.features],
          layer: i,
        });
      }
    }
  });
  const ordered = [
    ...drafts.filter((d) => d.group === "S"),
    ...drafts.filter((d) => d.group === "O"),
  ];
  let offset = 0;
  const tensors = ordered.map((d) => {
    const t = { ...d, offset };
    offset += d.size;
    return t;
  });
  const sEnd = tensors.filter((t) => t.group === "S").reduce((s, t) => s + t.size, 0);
  const find = (layer: number, suffix: string) =>
    tensors.find((t) => t.layer === layer && t.name.endsWith(suffix));
  const hidden: HiddenBlock[] = [];
  let statsOffset = 0;
  graph.forEach((layer, i) => {
    if (layer.kind !== "linear" || layer.bias) return;
    const bn = i + 1;
    hidden.push({
      weight: find(i, ".weight")!,
      gamma: find(bn, ".gamma"),
      beta: find(bn, ".beta"),
      inputs: layer.inputs,
      width: layer.outputs,
      statsOffset,
    });
    statsOffset += layer.outputs;
  });
  const last = graph.length - 1;
  const dims = spec.dims;
  return {
    spec,
    graph,
    tensors,
    hidden,
    head: {
      weight: find(last, ".weight")!,
      bias: find(last, ".bias")!,
      inputs: dims[dims.length - 2],
      classes: dims[dims.length - 1],
    },
    size: offset,
    sEnd,
    statsSize: statsOffset,
  };
}

/**
 * PyTorch's default initialisation from a seed, in float64: Linear weights and biases
 * U(-1/sqrt(in), 1/sqrt(in)), BatchNorm gamma 1 and beta 0.
 */
export function initParams(layout: MlpLayout, seed: number): Float64Array {
  const rng = createRng(seed);
  const p = new Float64Array(layout.size);
  for (const t of layout.tensors) {
    const view = p.subarray(t.offset, t.offset + t.size);
    if (t.name.endsWith(".gamma")) view.fill(1);
    else if (t.name.endsWith(".beta")) view.fill(0);
    else {
      const fanIn = (layout.graph[t.layer] as { inputs: number }).inputs;
      const bound = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < view.length; i++) view[i] = rng.uniform(-bound, bound);
    }
  }
  return p;
}
