/** The --grid language: lists, ranges, products and every error. */

import { gridPoints, MAX_POINTS, parseGrid } from "./grid.ts";
import { ReportError } from "./errors.ts";

function assertEquals(a: unknown, b: unknown): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(`${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
  }
}

function assertThrows(f: () => unknown, fragment: string): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof ReportError)) throw e;
    if (!e.message.includes(fragment)) throw new Error(`"${e.message}" lacks "${fragment}"`);
    if (e.message.includes("\n")) throw new Error(`not one line: ${e.message}`);
    return;
  }
  throw new Error(`no error; expected "${fragment}"`);
}

Deno.test("lists, integer ranges and both; values stay text", () => {
  assertEquals(parseGrid(" lr=0.05,0.1   seed=0..2 wd=5e-4 "), [
    { name: "lr", values: ["0.05", "0.1"] },
    { name: "seed", values: ["0", "1", "2"] },
    { name: "wd", values: ["5e-4"] },
  ]);
  assertEquals(parseGrid("seed=0..1,10")[0].values, ["0", "1", "10"]);
  assertEquals(parseGrid("hidden=32,32;64")[0].values, ["32,32", "64"]);
  assertEquals(parseGrid("--lr=0.1")[0].name, "lr");
});

Deno.test("the points are the product, the first axis slowest", () => {
  const points = gridPoints(parseGrid("lr=0.05,0.1 seed=0..2"));
  assertEquals(points.length, 6);
  assertEquals(points[0], { lr: "0.05", seed: "0" });
  assertEquals(points[1], { lr: "0.05", seed: "1" });
  assertEquals(points[5], { lr: "0.1", seed: "2" });
});

Deno.test("grid errors are one line naming the axis", () => {
  assertThrows(() => parseGrid("  "), "empty");
  assertThrows(() => parseGrid("lr"), `"lr": expected name=values`);
  assertThrows(() => parseGrid("lr="), "expected name=values");
  assertThrows(() => parseGrid("=1"), "expected name=values");
  assertThrows(() => parseGrid("lr=0.1 lr=0.2"), "lr appears twice");
  assertThrows(() => parseGrid("lr=0.1,0.1"), "lr lists 0.1 twice");
  assertThrows(() => parseGrid("lr=0.1,,0.2"), "lr: an empty value");
  assertThrows(() => parseGrid("seed=4..1"), "seed=4..1: the range ends before it starts");
  assertThrows(() => parseGrid("lr=0.1..0.5"), "a range a..b takes integers");
  assertThrows(() => parseGrid("seed=0..1000000"), `more than ${MAX_POINTS} values`);
  assertThrows(() => parseGrid("seed=0..999 lr=1..20"), "20000 points");
});
