/**
 * The axes of a comparison without a manifest: the settings that differ, compared only where
 * they are known for every result (a result without a summary knows none; an older summary
 * lacks the settings added since).
 */

import { defaultConfig } from "../pipeline/config.ts";
import { differingSettings } from "./compare.ts";

function assertEquals(a: unknown, b: unknown): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(`${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
  }
}

const full = (extra: Record<string, unknown>) => ({
  ...defaultConfig(),
  summary: "s.json",
  ...extra,
});

Deno.test("only the settings that differ are axes, output paths never", () => {
  assertEquals(
    differingSettings([full({ lr: 0.2, summary: "a.json" }), full({ lr: 0.1 }), full({})]),
    [{ name: "lr", values: [0.1, 0.2] }],
  );
  // A setting without a default is absent where unset: that absence is a value.
  assertEquals(differingSettings([full({ "lr-o": 0.01 }), full({})]), [
    { name: "lr-o", values: [0.01, undefined] },
  ]);
});

Deno.test("a result whose settings are unknown makes none an axis, not all of them", () => {
  assertEquals(differingSettings([full({ lr: 0.2 }), full({}), null]), []);
  assertEquals(differingSettings([null, null]), []);
  // An older trainer's summary without `precision`: not a difference, just not known there.
  const { precision: _, ...older } = full({ lr: 0.2 });
  assertEquals(differingSettings([older, full({ precision: "df64" })]), [
    { name: "lr", values: [0.1, 0.2] },
  ]);
});
