/**
 * Everything decided before the first step, with no GPU: the data and its normalisation, the
 * model layout, the run plan, every run's initial state, and the startup checks (group S is
 * scale-invariant, the whole schedule is computable, no run starts above the rescale
 * threshold, no batch of one example).
 *
 * @module
 */

import { type Config, ConfigError, isModelFile } from "./config.ts";
import { seeds } from "../core/prng.ts";
import { type LrScheduleSpec, milestoneNotes } from "../core/schedule.ts";
import { RunPlan, type RunsSpec } from "../core/runs.ts";
import type { ModelLayout } from "../core/graph.ts";
import { explainGroups } from "../core/explain.ts";
import { buildModel, type BuiltinSpec, type ModelData } from "../core/models.ts";
import { loadModelFile, type ModelFile, modelFileLayout } from "./model_file.ts";
import { initialState, runStates } from "../core/init.ts";
import {
  DEFAULT_SPLIT_SEED,
  fitNormalisation,
  loadData,
  normalise,
} from "../stages/data/dataset.ts";
import { checkAugment, checkSizes, probeBatch } from "../stages/data/loader.ts";
import type { Dataset, Splits } from "../stages/data/types.ts";
import type { AugmentOptions } from "../stages/data/augment.ts";
import { checkScaleInvariance } from "../reference/invariance.ts";
import { type CheckpointFile, checkpointState } from "../stages/checkpoint.ts";
import type { TrainerState } from "../stages/state.ts";
import type { TrainerOptions } from "../stages/trainer.ts";
import { loadWeights } from "./weights.ts";
import { checkResumable, readCheckpoint } from "./resume.ts";

/** The prepared job: data, model, plan and initial state. */
export interface Prepared {
  config: Config;
  train: Dataset;
  heldout: Dataset;
  /** Normalised training and held-out inputs. */
  trainX: Float32Array;
  heldX: Float32Array;
  probe: { x: Float32Array; y: Int32Array; size: number };
  layout: ModelLayout;
  /** The model file `--model` names, when it names one. */
  modelFile?: ModelFile;
  plan: RunPlan;
  spec: RunsSpec;
  totalSteps: number;
  epochs: number;
  /** Run-stacked initial weights and momentum buffers (float32). */
  init: { params: Float32Array; bufs: Float64Array };
  /** With --resume: the checkpoint and the state it holds (the run continues after its step). */
  resume?: { file: CheckpointFile; state: TrainerState };
  /** Problems with the data that do not stop the run (a stray large label), one line each. */
  warnings: string[];
}

/** Steps per epoch and the run's length: `--steps` if given (as many epochs as that takes), else `--epochs` epochs. */
export function plannedSteps(
  config: Config,
  trainExamples: number,
): { perEpoch: number; total: number; epochs: number } {
  const perEpoch = config["last-batch"] === "drop"
    ? Math.floor(trainExamples / config["batch-size"])
    : Math.ceil(trainExamples / config["batch-size"]);
  const total = config.steps > 0 ? config.steps : perEpoch * config.epochs;
  return { perEpoch, total, epochs: Math.ceil(total / perEpoch) };
}

/** The run plan's spec from the configuration. */
export function runsSpec(config: Config, totalSteps: number): RunsSpec {
  const schedule: LrScheduleSpec = {
    base: config.lr,
    kind: config.schedule,
    milestones: config.milestones,
    factor: config["step-factor"],
    minFactor: config["min-lr-factor"],
    warmupSteps: config.warmup,
    warmupStartFactor: config["warmup-start"],
    totalSteps,
  };
  return {
    runs: config.runs,
    explr: config.explr,
    schedule,
    wd: config.wd,
    momentum: config.momentum,
    lrO: config["lr-o"] ?? config.lr,
    wdO: config["wd-o"] ?? config.wd,
    bnEps: config["bn-eps"],
    bnEpsMode: config["bn-eps-mode"],
    wdStyle: config["wd-style"],
  };
}

/** The loader's augmentation settings (`--augment`), or undefined for none. */
export function augmentOptions(config: Config): AugmentOptions | undefined {
  if (config.augment.length === 0) return undefined;
  return {
    flip: config.augment.includes("flip"),
    crop: config.augment.includes("crop"),
    seed: seeds(config).augment,
  };
}

/**
 * The probe's rows unless `--probe` sets them: 512 for the MLP; 128 for the convolutional
 * models, whose activations per example are hundreds of times larger.
 */
export function defaultProbe(model: Config["model"]): number {
  return model === "mlp" ? 512 : 128;
}

/** The built-in model the configuration names. */
export function modelSpec(config: Config): BuiltinSpec {
  switch (config.model) {
    case "mlp":
      return { model: "mlp", hidden: config.hidden };
    case "cnn":
      return { model: "cnn" };
    case "preresnet":
      return { model: "preresnet", depth: config.depth, width: config.width };
  }
  throw new ConfigError(`--model: ${config.model} is not a built-in model`);
}

/**
 * The model the configuration names, built for `data`: a built-in one, or the model file's
 * (loaded here). Any failure is one {@link ConfigError} line naming the model (and the file's
 * line).
 */
export async function configLayout(
  config: Config,
  data: ModelData,
): Promise<{ layout: ModelLayout; modelFile?: ModelFile }> {
  if (isModelFile(config.model)) {
    const modelFile = await loadModelFile(config.model);
    return { layout: modelFileLayout(modelFile, data), modelFile };
  }
  if (config.model !== "mlp" && data.inputShape.length !== 3) {
    throw new ConfigError(`--model: ${config.model} needs image data; the data is flat`);
  }
  try {
    return { layout: buildModel(modelSpec(config), data) };
  } catch (e) {
    throw new ConfigError(`--model: ${config.model}: ${(e as Error).message}`);
  }
}

/** The input and classes of the models for a dataset, and the normalizations' affine default. */
export function modelData(config: Config, train: Dataset, heldout: Dataset): ModelData {
  const image = train.image;
  return {
    inputShape: image ? [image.height, image.width, image.channels] : [train.dim],
    classes: Math.max(train.classes, heldout.classes),
    affine: config["bn-affine"],
  };
}

/**
 * Startup checks of the plan that would otherwise fail mid-run: the whole schedule of run B
 * is computable (lr × wd not too large for the momentum: THEORY §3's c_t stays positive), no
 * run starts above `--rescale-above`, and no batch has a single example (BatchNorm needs two).
 */
export function checkPlan(
  config: Config,
  spec: RunsSpec,
  layout: ModelLayout,
  init: Float32Array,
  trainExamples: number,
): void {
  const dry = new RunPlan(spec);
  try {
    for (let t = 0; t < spec.schedule.totalSteps; t++) dry.next();
  } catch (e) {
    throw new ConfigError(`--lr/--wd/--momentum: at step ${dry.step - 1}: ${(e as Error).message}`);
  }
  for (let r = 0; r < spec.runs.length; r++) {
    const w = init.subarray(r * layout.size, r * layout.size + layout.sEnd);
    const norm = Math.sqrt(w.reduce((a, v) => a + v * v, 0));
    if (norm <= config["rescale-above"]) continue;
    // Blame the flag that made the weights large: --init-scale or --init-from when given.
    const scale = config["init-scale"];
    const cause = config["init-from"]
      ? `--init-from: ${config["init-from"]} gives`
      : scale !== 1
      ? `--init-scale: ${scale} gives`
      : `--rescale-above: ${config["rescale-above"]} is below`;
    const what = `run ${spec.runs[r]}'s initial S weight norm ${
      Number.isFinite(norm) ? norm.toPrecision(4) : `${norm} (float32 overflows)`
    }`;
    throw new ConfigError(
      cause.startsWith("--rescale-above")
        ? `${cause} ${what}`
        : `${cause} ${what}, above --rescale-above ${config["rescale-above"]}; ${
          config["init-from"]
            ? "raise --rescale-above"
            : "lower --init-scale or raise --rescale-above"
        }`,
    );
  }
  if (config["last-batch"] === "keep" && trainExamples % config["batch-size"] === 1) {
    throw new ConfigError(
      `--last-batch: keep would leave a last batch of 1 example (${trainExamples} examples, batch ${
        config["batch-size"]
      }); BatchNorm needs 2`,
    );
  }
  if (config["running-stats"] === "weightnorm") {
    const deep = layout.batchNorms.find((b) => b.inputDegree > 1);
    if (deep) {
      throw new ConfigError(
        `--running-stats: weightnorm needs every BatchNorm input to carry one power of the S ` +
          `scale; ${layout.graph.nodes[deep.node].name} carries ${deep.inputDegree} (use plain)`,
      );
    }
  }
}

/** The data and the model, before any check of the plan. */
export interface PreparedModel {
  splits: Splits;
  train: Dataset;
  heldout: Dataset;
  /** Normalised training and held-out inputs. */
  trainX: Float32Array;
  heldX: Float32Array;
  probe: Prepared["probe"];
  layout: ModelLayout;
  modelFile?: ModelFile;
}

/** Loads and normalises the data, takes the probe batch and builds the model for them. */
export async function prepareModel(config: Config): Promise<PreparedModel> {
  const label = config["label-column"];
  const labelColumn = label !== undefined && /^-?\d+$/.test(label) ? Number(label) : label;
  const splits = await loadData({
    data: config.data,
    heldout: config.heldout,
    seed: DEFAULT_SPLIT_SEED,
    labelColumn,
  });
  const probeRows = config.probe ?? defaultProbe(config.model);
  checkSizes(splits, { batchSize: config["batch-size"], probe: probeRows });
  const { train, heldout } = splits;
  checkAugment(train, augmentOptions(config));
  const norm = fitNormalisation(train);
  const trainX = normalise(train, norm), heldX = normalise(heldout, norm);
  const probe = probeBatch(heldX, heldout.y, train.dim, probeRows);
  const { layout, modelFile } = await configLayout(config, modelData(config, train, heldout));
  return { splits, train, heldout, trainX, heldX, probe, layout, modelFile };
}

/**
 * Probe rows the startup invariance check runs in float64: 64, or 8 for images (a few
 * examples already give BatchNorm thousands of rows, and keep the float64 convolutions short).
 */
export function invarianceRows(layout: ModelLayout, probeRows: number): number {
  return Math.min(probeRows, layout.inputShape.length === 3 ? 8 : 64);
}

/**
 * Refuses a model whose group S is empty: runs A and B differ only on S, so B would equal A
 * trivially and the run would show nothing.
 */
export function checkInvariantGroup(layout: ModelLayout): void {
  if (layout.sEnd > 0) return;
  const why = explainGroups(layout).find((e) => e.tensor.role === "weight");
  throw new ConfigError(
    `--model: ${layout.description} has no scale-invariant weight (group S is empty), so run B ` +
      `would equal run A trivially (they differ only on S)${
        why ? `; e.g. ${why.tensor.name}: ${why.reason}` : ""
      } (deno task inspect shows every weight's reason)`,
  );
}

/** Loads the data and builds the model, the plan and the initial state; runs the startup checks. */
export async function prepare(config: Config): Promise<Prepared> {
  const checkpoint = config.resume ? await readCheckpoint(config.resume) : undefined;
  const { splits, train, heldout, trainX, heldX, probe, layout, modelFile } = await prepareModel(
    config,
  );
  checkInvariantGroup(layout);
  const { total: totalSteps, epochs } = plannedSteps(config, train.n);
  if (checkpoint) {
    checkResumable(config, checkpoint, (c) => plannedSteps(c, train.n).total, modelFile);
    if (checkpoint.meta.step + 1 >= totalSteps) {
      throw new ConfigError(
        `--resume: ${checkpoint.source} is after step ${checkpoint.meta.step}; the run has ` +
          `${totalSteps} steps, so nothing is left to train (raise --steps or --epochs)`,
      );
    }
  }
  const spec = runsSpec(config, totalSteps);
  const plan = new RunPlan(spec);
  const init = config["init-from"]
    ? runStates(layout, plan, await loadWeights(config["init-from"], layout))
    : initialState(layout, plan, seeds(config).init, config["init-scale"]);
  checkScaleInvariance(layout, init.params, probe.x, invarianceRows(layout, probe.size));
  checkPlan(config, spec, layout, init.params, train.n);
  return {
    config,
    train,
    heldout,
    trainX,
    heldX,
    probe,
    layout,
    modelFile,
    plan,
    spec,
    totalSteps,
    epochs,
    init,
    resume: checkpoint && {
      file: checkpoint,
      state: checkpointState(checkpoint, layout, config.precision),
    },
    warnings: [...(splits.warnings ?? []), ...milestoneNotes(spec.schedule)],
  };
}

/** The stderr line that says what is about to be trained. */
export function describe(p: Prepared): string {
  const { train, heldout, layout, config } = p;
  const shape = train.image
    ? `${train.image.height}x${train.image.width}x${train.image.channels}`
    : `${train.dim} features`;
  return `data: ${train.name} (${train.n} train, ${heldout.n} held out, ${shape}, ` +
    `${layout.classes} classes); model ${layout.description}, ${layout.size} parameters ` +
    `(S ${layout.sEnd} in ${layout.sTensors.length} tensors, O ${layout.size - layout.sEnd}); ` +
    `runs ${config.runs.join(",")}; ${p.totalSteps} steps`;
}

/** The trainer's options for `config`'s model and data, with `runs` runs (default: --runs). */
export function trainerOptions(
  config: Config,
  p: Pick<PreparedModel, "layout" | "train" | "probe">,
  runs = config.runs.length,
): TrainerOptions {
  return {
    precision: config.precision,
    layout: p.layout,
    runs,
    batchRows: config["batch-size"],
    shortBatchRows: config["last-batch"] === "keep"
      ? p.train.n % config["batch-size"] || undefined
      : undefined,
    probe: { x: p.probe.x, y: p.probe.y, rows: p.probe.size },
    bnMomentum: config["bn-momentum"],
    runningStats: config["running-stats"],
    seed: seeds(config).perturb,
    inFlight: config["in-flight"],
  };
}
