import {
  convGeometry,
  fanIn,
  GraphBuilder,
  groupRule,
  modelLayout,
  nodeMatrix,
  poolGeometry,
  scaleInvariantWeights,
} from "./graph.ts";
import { initParams } from "./init.ts";
import { cnnLayout, mlpLayout, preresnetLayout } from "./test_fixtures.ts";
import { assertThrows } from "./test_util.ts";

Deno.test("mlp layout: S tensors first, contiguous, tagged from the graph", () => {
  const layout = mlpLayout([7, 5, 4, 3]);
  const names = layout.tensors.map((t) => `${t.name}:${t.group}`);
  const expected = [
    "fc0.weight:S",
    "fc1.weight:S",
    "bn0.weight:O",
    "bn0.bias:O",
    "bn1.weight:O",
    "bn1.bias:O",
    "head.weight:O",
    "head.bias:O",
  ];
  if (names.join() !== expected.join()) throw new Error(`tensors ${names}`);
  if (layout.sEnd !== 7 * 5 + 5 * 4 || layout.size !== layout.sEnd + 2 * 5 + 2 * 4 + 4 * 3 + 3) {
    throw new Error(`sEnd ${layout.sEnd}, size ${layout.size}`);
  }
  let offset = 0;
  for (const t of layout.tensors) {
    if (t.offset !== offset) throw new Error(`${t.name} at ${t.offset}, expected ${offset}`);
    offset += t.size;
  }
  const units = layout.batchNorms.map((b) => `${b.offset}:${b.features}:${b.unit}`);
  if (units.join() !== "0:5:0,5:4:1") throw new Error(`BatchNorm stats ${units}`);
  if (mlpLayout([7, 5, 3], false).tensors.some((t) => t.name.startsWith("bn"))) {
    throw new Error("non-affine BatchNorm has no parameters");
  }
});

Deno.test("group S from the graph: cnn and preresnet, every conv jointly invariant", () => {
  const cnn = cnnLayout(12, 3, 4);
  const s = cnn.sTensors.map((t) => t.name).join();
  if (s !== "conv0.weight,conv1.weight,conv2.weight") throw new Error(`cnn S: ${s}`);
  if (cnn.graph.nodes[cnn.graph.logits].shape.join() !== "4") throw new Error("cnn logits");

  const res = preresnetLayout(8, 4, 8, 3, 5);
  const sNames = res.sTensors.map((t) => t.name);
  const convs = res.graph.nodes.filter((n) => n.op.kind === "conv").map((n) => `${n.name}.weight`);
  // PreResNet-8: stem, 3 blocks of 2 convs, projections in stages 2 and 3.
  if (convs.length !== 9 || sNames.join() !== convs.join()) {
    throw new Error(`preresnet S ${sNames} vs convs ${convs}`);
  }
  if (res.tensors.find((t) => t.name === "head.weight")?.group !== "O") throw new Error("head");
  // Every BatchNorm reading the residual stream has a unit whose scale the stream carries.
  for (const bn of res.batchNorms) {
    if (bn.unit === undefined || bn.inputDegree !== 1) {
      throw new Error(
        `${res.graph.nodes[bn.node].name}: unit ${bn.unit}, degree ${bn.inputDegree}`,
      );
    }
  }
});

Deno.test("group S from the graph: a projection of the raw stream stays in O, conflicts resolve", () => {
  // A residual block whose projection reads the raw stream x (degree 1): its output carries
  // degree 2, so the rule must drop the projection (and only it) from S.
  const b = new GraphBuilder();
  const x = b.input([6, 6, 2]).conv(4, 3, { name: "stem" });
  const branch = x.bn().relu().conv(8, 3, { stride: 2, name: "conv" });
  const proj = x.conv(8, 1, { stride: 2, pad: 0, name: "proj" });
  const out = branch.add(proj).bn().relu().avgpool().linear(3, { bias: true, name: "head" });
  const graph = b.build(out.softmaxCrossEntropy());
  const names = [...scaleInvariantWeights(graph)].map((id) => graph.nodes[id].name);
  if (names.join() !== "stem,conv") throw new Error(`S = ${names}`);

  // A weight whose output reaches the head without a BatchNorm cannot be in S.
  const c = new GraphBuilder();
  const y = c.input([5]).linear(4, { name: "a" }).relu().linear(3, { name: "b" }).bn().relu()
    .linear(2, { name: "free" }).linear(2, { bias: true, name: "head" });
  const g2 = c.build(y.softmaxCrossEntropy());
  const s2 = [...scaleInvariantWeights(g2)].map((id) => g2.nodes[id].name);
  if (s2.join() !== "a,b") throw new Error(`S = ${s2}`);
  const layout = modelLayout(g2, "test");
  const bn = layout.batchNorms[0];
  if (bn.inputDegree !== 2) throw new Error(`degree ${bn.inputDegree}`);
});

Deno.test("graph builder: shapes, names and errors", () => {
  const res = preresnetLayout(20, 16, 32, 3, 10);
  const names = res.graph.nodes.map((n) => n.name);
  for (const n of ["stem", "layer1.0.conv1", "layer2.0.shortcut", "layer3.2.conv2", "head"]) {
    if (!names.includes(n)) throw new Error(`missing ${n}`);
  }
  const last = res.graph.nodes.find((n) => n.name === "layer3.2.conv2")!;
  if (last.shape.join("x") !== "8x8x64") throw new Error(`layer3 shape ${last.shape}`);
  assertThrows(() => preresnetLayout(10, 4, 8, 3, 2), "6n+2");
  assertThrows(() => new GraphBuilder().input([5]).conv(3, 3), "needs an image input");
  assertThrows(() => new GraphBuilder().input([1, 1, 2]).maxpool2(), "too small");
  assertThrows(() => mlpLayout([4, 3]), "at least one hidden layer");
  const b = new GraphBuilder();
  const x = b.input([4, 4, 1]);
  assertThrows(() => x.conv(2, 3).add(x), "shapes");
  assertThrows(() => b.build(x), "must end with its loss");
});

Deno.test("initParams: PyTorch's bounds (fan-in), gamma 1, beta 0, reproducible from the seed", () => {
  for (const layout of [mlpLayout([16, 8, 4]), cnnLayout(8, 2, 3)]) {
    const a = initParams(layout, 3), b = initParams(layout, 3), c = initParams(layout, 4);
    if (a.join() !== b.join() || a.join() === c.join()) throw new Error("seeding");
    for (const t of layout.tensors) {
      const v = a.subarray(t.offset, t.offset + t.size);
      if (t.role === "gamma" && v.some((x) => x !== 1)) throw new Error("gamma");
      if (t.role === "beta" && v.some((x) => x !== 0)) throw new Error("beta");
      const bound = 1 / Math.sqrt(t.fanIn);
      if ((t.role === "weight" || t.role === "bias") && v.some((x) => Math.abs(x) > bound)) {
        throw new Error(`${t.name} out of bounds`);
      }
      if (t.role === "weight" && Math.max(...v.map(Math.abs)) < 0.8 * bound) {
        throw new Error(`${t.name} does not fill its bounds`);
      }
    }
  }
});

Deno.test("shape queries: fan-in, a node as a matrix, conv and pool geometry", () => {
  const b = new GraphBuilder();
  const x = b.input([9, 9, 2]);
  const conv = x.conv(4, 3, { stride: 2 });
  const pool = conv.bn().relu().maxpool2();
  const head = pool.linear(3, { bias: true });
  const graph = b.build(head.softmaxCrossEntropy());
  const node = (t: { id: number }) => graph.nodes[t.id];
  const same = (a: unknown, e: unknown, what: string) => {
    if (JSON.stringify(a) !== JSON.stringify(e)) throw new Error(`${what}: ${JSON.stringify(a)}`);
  };
  same(node(conv).shape, [5, 5, 4], "conv output (floor((9 + 2 - 3) / 2) + 1)");
  same(convGeometry(graph, node(conv), 7), {
    n: 7,
    h: 9,
    w: 9,
    cin: 2,
    cout: 4,
    k: 3,
    stride: 2,
    pad: 1,
  }, "conv geometry");
  same(poolGeometry(graph, node(pool), 7), { n: 7, h: 5, w: 5, c: 4 }, "pool geometry");
  same(nodeMatrix(node(conv), 7), { rows: 7 * 25, features: 4 }, "conv output as a matrix");
  same([fanIn(graph, node(conv)), fanIn(graph, node(head)), fanIn(graph, node(pool))], [
    18,
    2 * 2 * 4,
    0,
  ], "fan-in");
  const layout = modelLayout(graph, "test");
  same(layout.tensors.map((t) => t.fanIn), [18, 0, 0, 16, 16], "tensors' fan-in");
  assertThrows(() => convGeometry(graph, node(pool), 1), "not a conv");
});

Deno.test("groupRule: marks O and S, LayerNorm and GroupNorm absorb scale, errors name the node", () => {
  const b = new GraphBuilder();
  let x = b.input([6, 6, 2]);
  x = x.conv(4, 3, { name: "a" }).gn(2).relu();
  x = x.conv(4, 3, { name: "b", group: "O" }).ln().relu().avgpool();
  const graph = b.build(x.linear(3, { bias: true, name: "head" }).softmaxCrossEntropy());
  const { S, dropped } = groupRule(graph);
  const names = (ids: Iterable<number>) => [...ids].map((id) => graph.nodes[id].name).sort();
  if (names(S).join() !== "a") throw new Error(`S ${names(S)}`);
  if (names(dropped.keys()).join() !== "b,head") {
    throw new Error(`dropped ${names(dropped.keys())}`);
  }
  const head = graph.nodes.find((n) => n.name === "head")!.id;
  if (dropped.get(head) !== head) throw new Error("head is dropped at its own bias");
  if (dropped.get(graph.nodes.find((n) => n.name === "b")!.id) !== undefined) {
    throw new Error("b is marked O");
  }
  const groups = modelLayout(graph, "t").tensors.map((t) => `${t.name}:${t.group}`).join();
  if (
    groups !==
      "a.weight:S,gn0.weight:O,gn0.bias:O,b.weight:O,ln0.weight:O,ln0.bias:O,head.weight:O,head.bias:O"
  ) {
    throw new Error(groups);
  }
  const marked = new GraphBuilder();
  const y = marked.input([5]).linear(4).bn().relu().linear(3, { bias: true, group: "S" });
  assertThrows(() => groupRule(marked.build(y.softmaxCrossEntropy())), "fc1: marked S");
  const bad = new GraphBuilder();
  assertThrows(() => bad.input([4, 4, 6]).gn(4), "gn0: 4 groups do not divide 6 channels");
  const flat = new GraphBuilder();
  assertThrows(() => flat.input([8]).conv(2, 3, { name: "c" }), "c: needs an image input");
});
