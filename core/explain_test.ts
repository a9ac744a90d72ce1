import { explainGroups, type TensorExplanation } from "./explain.ts";
import { GraphBuilder, type ModelLayout, modelLayout, NORMALIZATIONS } from "./graph.ts";
import { mlpLayout, preresnetLayout } from "./test_fixtures.ts";

/** The explanations of `layout` by tensor name, checked to follow the layout. */
function explained(layout: ModelLayout): Map<string, TensorExplanation> {
  const all = explainGroups(layout);
  const names = all.map((e) => e.tensor.name).join();
  if (names !== layout.tensors.map((t) => t.name).join()) throw new Error(`order ${names}`);
  for (const e of all) {
    if (e.group !== e.tensor.group) throw new Error(`${e.tensor.name}: group ${e.group}`);
    if (!e.reason) throw new Error(`${e.tensor.name}: no reason`);
  }
  return new Map(all.map((e) => [e.tensor.name, e]));
}

/** Throws unless `name`'s reason contains every fragment. */
function assertReason(by: Map<string, TensorExplanation>, name: string, ...fragments: string[]) {
  const reason = by.get(name)?.reason ?? "(no such tensor)";
  for (const f of fragments) {
    if (!reason.includes(f)) throw new Error(`${name}: "${reason}" lacks "${f}"`);
  }
}

/** Every S weight names a normalization of the graph; the head is O for its bias. */
function assertSensible(layout: ModelLayout) {
  const by = explained(layout);
  const norms = layout.graph.nodes.filter((n) => NORMALIZATIONS.has(n.op.kind)).map((n) => n.name);
  for (const e of by.values()) {
    if (e.group !== "S") continue;
    if (!e.reason.startsWith("scale absorbed by ") || !norms.some((n) => e.reason.includes(n))) {
      throw new Error(`${e.tensor.name}: "${e.reason}" names no normalization`);
    }
  }
  assertReason(by, "head.weight", "a bias is added to its output", "its output is the logits");
  assertReason(by, "head.bias", "(always O)");
  return by;
}

Deno.test("explainGroups: mlp weights absorbed by their BatchNorms, the head O for its bias", () => {
  const by = assertSensible(mlpLayout([7, 5, 4, 3]));
  assertReason(by, "fc0.weight", "scale absorbed by bn0");
  assertReason(by, "fc1.weight", "scale absorbed by bn1");
  assertReason(by, "bn0.weight", "scale of bn0's output", "(always O)");
  assertReason(by, "bn1.bias", "shift of bn1's output", "(always O)");
});

Deno.test("explainGroups: preresnet stream writers absorbed jointly by the next blocks' norms", () => {
  const by = assertSensible(preresnetLayout(20, 4, 8, 3, 10));
  assertReason(by, "layer1.0.conv1.weight", "scale absorbed by layer1.0.bn2");
  // The stem writes the stream that layer1.0-2 read, then layer2.0's pre-activation.
  assertReason(by, "stem.weight", "layer1.0.bn1, layer1.1.bn1 and 2 more", "jointly", "add0");
  assertReason(by, "layer3.2.conv2.weight", "scale absorbed by bn_final", "add8");
  assertReason(by, "layer2.0.shortcut.weight", "layer3.0.bn1", "add3");
});

Deno.test("explainGroups: a conv with no normalization before the head is O, with its path", () => {
  const b = new GraphBuilder();
  const x = b.input([6, 6, 2]);
  const logits = x.conv(8, 3).bn().relu().conv(8, 3).relu().avgpool().linear(4, { bias: true });
  const by = explained(modelLayout(b.build(logits.softmaxCrossEntropy()), "test"));
  assertReason(by, "conv0.weight", "scale absorbed by bn0");
  assertReason(
    by,
    "conv1.weight",
    "its scale reaches the loss without a normalization: conv1 → relu1 → avgpool0 → fc0",
  );
  if (by.get("conv1.weight")!.group !== "O") throw new Error("conv1 should be O");
  assertReason(by, "fc0.weight", "a bias is added to its output", "the logits");
});

Deno.test("explainGroups: a raw-input projection unbalances its add; marks are named", () => {
  const b = new GraphBuilder();
  const x = b.input([6, 6, 2]);
  const stem = x.conv(4, 3, { name: "stem" });
  const branch = stem.bn().relu().conv(8, 3, { stride: 2 }).bn().relu().conv(8, 3);
  const raw = stem.conv(8, 1, { stride: 2, name: "raw" });
  const logits = branch.add(raw).bn().relu().avgpool()
    .linear(6, { group: "S", name: "fc" }).ln()
    .linear(4, { bias: true, group: "O", name: "head" });
  const by = explained(modelLayout(b.build(logits.softmaxCrossEntropy()), "test"));
  assertReason(by, "raw.weight", "would unbalance add0 (its other input, conv2, does not scale");
  assertReason(by, "stem.weight", "scale absorbed by bn0 and bn2", "add0");
  assertReason(by, "fc.weight", "marked S in the model; scale absorbed by ln0");
  assertReason(by, "head.weight", "marked O in the model");
});
