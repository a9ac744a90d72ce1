/**
 * The vertical marks of a run's plots: schedule phase boundaries (from the summary's config when
 * it has one, else from run A's lr column) and the Lemma-2 rescale events of the rows.
 *
 * @module
 */

import { z } from "zod";
import type { RunData } from "./accumulate.ts";
import { type Mark, phasesFromConfig } from "./phases.ts";
import type { Summary } from "./summary_file.ts";

const scheduleSchema = z.looseObject({
  schedule: z.string().optional(),
  milestones: z.array(z.number()).optional(),
  "step-factor": z.number().optional(),
  warmup: z.number().optional(),
  steps: z.number().optional(),
});

/** The marks and a sentence on where the phase boundaries came from. */
export interface RunMarks {
  marks: Mark[];
  phaseSource: string;
}

/** Phase boundaries and rescales of one run. */
export function runMarks(d: RunData, summary: Summary | null): RunMarks {
  const settings = scheduleSchema.safeParse(summary?.config);
  const finished = summary !== null && !summary.stopped && !summary.output_closed;
  const fromConfig = settings.success
    ? phasesFromConfig(settings.data, finished ? summary!.steps : null)
    : null;
  const phases = fromConfig ?? d.lrMarks;
  const rescales: Mark[] = d.events.map((e) => ({
    step: e.step,
    kind: "rescale",
    label: `rescale ${e.run} ×${e.factor}`,
  }));
  const phaseSource = fromConfig ? "the summary's config" : "run A's lr column";
  return { marks: [...phases, ...rescales], phaseSource };
}
