// The rule-based estimators (mixai_inference.rules), the engine's fallback when a model cannot
// answer. Golden vectors written by Python (tests/fixtures/rules_vectors.json) lock the port.

import { MASTER_PARAM_NAMES, MASTER_PARAM_RANGES, PRESETS } from "./tasks.ts";

interface RuleInput {
  name: string;
  typical: number; // replaces a non-finite value
  low: number;
  high: number;
}

const input = (name: string, typical: number, low: number, high: number): RuleInput => ({
  name,
  typical,
  low,
  high,
});

export const TRACK_INPUTS = {
  lufs: input("loudness_integrated_lufs", -14, -70, 0),
  lra: input("loudness_range_lu", 7, 0, 40),
  crest: input("crest_factor_db", 12, 0, 40),
  centroid: input("spectral_centroid_mean", 2000, 50, 16000),
  tempo: input("tempo_bpm", 110, 30, 300),
  correlation: input("stereo_correlation_mean", 0.6, -1, 1),
  band_low: input("band_energy_low_db", -3, -60, 0),
  band_mid: input("band_energy_mid_db", -4, -60, 0),
  band_high: input("band_energy_high_db", -14, -80, 0),
} as const;

export const ALIGN_INPUTS = {
  psr: input("xcorr_peak_to_sidelobe_ratio", 10, 0, 1000),
  agreement: input("segment_agreement_ratio", 0.5, 0, 1),
} as const;

const TARGET_LUFS = -14;
const CEILING_DBTP = -1;
const EQ_BANDS = [
  ["eq_low_gain_db", "band_low"],
  ["eq_mid_gain_db", "band_mid"],
  ["eq_high_gain_db", "band_high"],
] as const;

// Preset scores: bias and weights of (brightness, tempo, dynamics, punch), in PRESETS order.
const PRESET_RULES: Readonly<Record<(typeof PRESETS)[number], readonly [number, number[]]>> = {
  natural: [0.5, [0, 0, 0, 0]],
  bright_pop: [-0.3, [1.5, 0.3, -0.3, 0]],
  warm_ballad: [-0.6, [-1.5, -1.0, 0.5, 0]],
  punchy_rock: [-0.4, [0.3, 0.8, -0.2, 0.8]],
  loud_edm: [-0.8, [0.5, 0.8, -1.5, -0.8]],
  soft_acoustic: [-0.6, [-0.5, -0.8, 1.2, 0]],
};

type Roles<T> = { [role in keyof T]: number };

/** Reads named inputs out of a feature row: cleaned values by role. */
function reader<T extends Record<string, RuleInput>>(
  names: readonly string[],
  inputs: T,
  what: string,
): (row: ArrayLike<number>) => Roles<T> {
  const position = new Map(names.map((name, i) => [name, i]));
  const missing = Object.values(inputs)
    .map((spec) => spec.name)
    .filter((name) => !position.has(name));
  if (missing.length) {
    throw new Error(`the rules need ${what} ${missing.join(", ")}, which are not among the names`);
  }
  return (row) => {
    if (row.length !== names.length) {
      throw new RangeError(`${what} must have ${names.length} values, got ${row.length}`);
    }
    const out = {} as Roles<T>;
    for (const [role, spec] of Object.entries(inputs) as [keyof T, RuleInput][]) {
      const raw = Number(row[position.get(spec.name) as number]);
      const value = Number.isFinite(raw) ? raw : spec.typical;
      out[role] = Math.min(Math.max(value, spec.low), spec.high);
    }
    return out;
  };
}

/** The rule-based estimators bound to the feature names they read (rules.Rules). */
export class Rules {
  private readonly track: (row: ArrayLike<number>) => Roles<typeof TRACK_INPUTS>;
  private readonly align: (row: ArrayLike<number>) => Roles<typeof ALIGN_INPUTS>;

  constructor(featureNames: readonly string[], alignmentFeatureNames: readonly string[]) {
    this.track = reader(featureNames, TRACK_INPUTS, "features");
    this.align = reader(alignmentFeatureNames, ALIGN_INPUTS, "alignment features");
  }

  /** Mastering parameters (MASTER_PARAM_NAMES order, label units, inside their ranges). */
  masterParams(features: ArrayLike<number>): number[] {
    const x = this.track(features);
    const out: Record<string, number> = {
      target_lufs: TARGET_LUFS - 0.25 * Math.max(x.lra - 8, 0),
      comp_threshold_db: x.lufs + 0.5 * x.crest - 2,
      comp_ratio: 1.5 + 0.25 * Math.max(x.lra - 4, 0) + 0.1 * Math.max(x.crest - 12, 0),
      limiter_ceiling_dbtp: CEILING_DBTP,
      stereo_width: 1 + 0.6 * (x.correlation - 0.6),
    };
    for (const [name, role] of EQ_BANDS) out[name] = -0.5 * (x[role] - TRACK_INPUTS[role].typical);
    return MASTER_PARAM_NAMES.map((name) => {
      const [low, high] = MASTER_PARAM_RANGES[name];
      return Math.min(Math.max(out[name], low), high);
    });
  }

  /** Preset probabilities in PRESETS order, summing to 1 (a softmax of linear scores). */
  presetScores(features: ArrayLike<number>): number[] {
    const x = this.track(features);
    const descriptors = [
      Math.log2(x.centroid / 2000),
      (x.tempo - 110) / 20,
      (x.lra - 7) / 3,
      (x.crest - 12) / 3,
    ];
    const logits = PRESETS.map((preset) => {
      const [bias, weights] = PRESET_RULES[preset];
      let sum = 0;
      weights.forEach((w, k) => (sum += descriptors[k] * w));
      return sum + bias;
    });
    const top = Math.max(...logits);
    const weights = logits.map((logit) => Math.exp(logit - top));
    let total = 0;
    for (const w of weights) total += w;
    return weights.map((w) => w / total);
  }

  /** Probability that an alignment is right, in (0, 1). */
  alignConfidence(alignFeatures: ArrayLike<number>): number {
    const x = this.align(alignFeatures);
    const logit = (x.psr - 10) / 2 + 4 * (x.agreement - 0.5);
    return 1 / (1 + Math.exp(-logit));
  }
}
