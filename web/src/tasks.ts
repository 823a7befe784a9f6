// The three tasks as the engine serves them: mixai_inference.tasks (outputs, ranges, how a model
// output is made usable, the answer's JSON fields) and the rule each falls back to.

import { Rules } from "./rules.ts";

export type Kind = "regression" | "classification" | "probability";
export type Source = "mix" | "alignment";

export const MASTER_PARAM_RANGES: Readonly<Record<string, readonly [number, number]>> = {
  target_lufs: [-20, -6],
  eq_low_gain_db: [-6, 6],
  eq_mid_gain_db: [-6, 6],
  eq_high_gain_db: [-6, 6],
  comp_threshold_db: [-30, 0],
  comp_ratio: [1, 8],
  limiter_ceiling_dbtp: [-3, 0],
  stereo_width: [0.5, 1.5],
};
export const MASTER_PARAM_NAMES = Object.keys(MASTER_PARAM_RANGES);
export const PRESETS = [
  "natural",
  "bright_pop",
  "warm_ballad",
  "punchy_rock",
  "loud_edm",
  "soft_acoustic",
] as const;
export const MASTER_FLAG = "enable_cpu_ml";

export interface TaskSpec {
  name: string;
  kind: Kind;
  outputs: readonly string[];
  outputTensor: string;
  inputTensor: string;
  flag: string;
  source: Source;
  labelKey: string | null;
  /** The rule's answer for one source vector, in the model's output space. */
  rule: (rules: Rules, row: ArrayLike<number>) => number[];
}

export const TASKS: readonly TaskSpec[] = [
  {
    name: "master_reg",
    kind: "regression",
    outputs: MASTER_PARAM_NAMES,
    outputTensor: "params",
    inputTensor: "features",
    flag: "enable_master_regression",
    source: "mix",
    labelKey: null,
    rule: (rules, row) => rules.masterParams(row),
  },
  {
    name: "preset_cls",
    kind: "classification",
    outputs: PRESETS,
    outputTensor: "probabilities",
    inputTensor: "features",
    flag: "enable_preset_recommendation",
    source: "mix",
    labelKey: "preset",
    rule: (rules, row) => rules.presetScores(row),
  },
  {
    name: "align_conf",
    kind: "probability",
    outputs: ["aligned_ok"],
    outputTensor: "probability",
    inputTensor: "features",
    flag: "enable_align_confidence",
    source: "alignment",
    labelKey: "aligned_ok",
    rule: (rules, row) => [rules.alignConfidence(row)],
  },
];

export const FLAG_NAMES = [MASTER_FLAG, ...TASKS.map((task) => task.flag)];

/** A model's output row made usable, or null when it cannot be (TaskSpec.finish). */
export function finish(spec: TaskSpec, values: number[]): number[] | null {
  if (spec.kind === "regression") {
    return values.map((v, i) => {
      const [low, high] = MASTER_PARAM_RANGES[spec.outputs[i]];
      return v < low ? low : v > high ? high : v;
    });
  }
  if (spec.kind === "classification") {
    const clipped = values.map((v) => (v > 0 ? v : 0));
    let total = 0;
    for (const v of clipped) total += v;
    if (!(total > 0)) return null;
    return Math.abs(total - 1) > 1e-6 ? clipped.map((v) => v / total) : clipped;
  }
  return [Math.min(Math.max(values[0], 0), 1)];
}

/** The answer's JSON fields, as `mixai-infer --json` prints them (TaskSpec.answer). */
export function answerFields(spec: TaskSpec, values: number[]): Record<string, unknown> {
  if (spec.kind === "regression") {
    return Object.fromEntries(spec.outputs.map((name, i) => [name, values[i]]));
  }
  if (spec.kind === "classification") {
    const scores = Object.fromEntries(spec.outputs.map((name, i) => [name, values[i]]));
    const best = spec.outputs[values.indexOf(Math.max(...values))];
    return { [spec.labelKey as string]: best, [`${spec.labelKey}_scores`]: scores };
  }
  return { confidence: values[0] };
}
