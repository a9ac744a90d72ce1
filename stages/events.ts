/**
 * The event stage: passes every output row on and reports each Lemma-2 rescale event on the
 * log (stderr), counting them for the summary.
 *
 * @module
 */

import type { OutputRow } from "./monitor.ts";

/** A pass-through stage that logs event rows; `count()` is the number seen so far. */
export function eventLogStage(
  log: (line: string) => void,
): { stage: TransformStream<OutputRow, OutputRow>; count: () => number } {
  let events = 0;
  const stage = new TransformStream<OutputRow, OutputRow>({
    transform(row, controller) {
      if (row.kind === "event") {
        events++;
        log(`step ${row.step}: rescaled run ${row.run} by ${row.factor} (Lemma 2)`);
      }
      controller.enqueue(row);
    },
  });
  return { stage, count: () => events };
}
