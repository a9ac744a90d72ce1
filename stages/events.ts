/**
 * The event stage: passes every output row on and reports each Lemma-2 rescale event on the
 * log (stderr).
 *
 * @module
 */

import type { OutputRow } from "./monitor.ts";

/** A pass-through stage that logs event rows. */
export function eventLogStage(log: (line: string) => void): TransformStream<OutputRow, OutputRow> {
  return new TransformStream<OutputRow, OutputRow>({
    transform(row, controller) {
      if (row.kind === "event") {
        log(`step ${row.step}: rescaled run ${row.run} by ${row.factor} (Lemma 2)`);
      }
      controller.enqueue(row);
    },
  });
}
