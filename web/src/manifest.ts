// The bundle's manifest.json (mixai_inference.bundle, format_version 1) as the engine reads it,
// the effective flags, and each task's serving plan (Predictor._plan).

import type { ExperimentRoute, TaskPlan } from "./routing.ts";
import { FLAG_NAMES, MASTER_FLAG, type TaskSpec } from "./tasks.ts";

export const FORMAT_VERSION = 1;

export interface ModelEntry {
  file: string;
  sha256: string;
  status: string;
  rollout_pct: number;
  feature_schema_version: string;
  input_name: string;
  input_dim: number;
  output_name: string;
  output_dim: number;
}

export interface EdgeGraph {
  file: string;
  sha256: string;
  sample_rates: number[];
  names: string[];
}

export interface Manifest {
  format_version: number;
  created_at: string;
  feature_schema_version: string;
  flags: Record<string, boolean>;
  tasks: Record<string, { active_version: string | null; models: Record<string, ModelEntry> }>;
  experiments: Record<
    string,
    {
      task: string;
      variants: Record<string, string | null>;
      weights: Record<string, number>;
      coverage?: number;
      salt?: string | null;
    }
  >;
  edge?: Record<string, EdgeGraph>;
}

/** A manifest the engine cannot use. */
export class BundleError extends Error {
  override name = "BundleError";
}

/** Parse manifest.json; checks what the engine relies on (the Python side validates fully). */
export function parseManifest(text: string): Manifest {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new BundleError(`manifest.json is not valid JSON: ${(error as Error).message}`);
  }
  const manifest = data as Manifest;
  if (typeof manifest !== "object" || manifest === null || Array.isArray(manifest)) {
    throw new BundleError("manifest: expected an object");
  }
  if (typeof manifest.format_version !== "number" || manifest.format_version > FORMAT_VERSION) {
    throw new BundleError(
      `manifest format_version ${manifest.format_version} is newer than this app reads ` +
        `(${FORMAT_VERSION}); rebuild the app with make edge`,
    );
  }
  if (typeof manifest.feature_schema_version !== "string") {
    throw new BundleError("manifest: feature_schema_version is missing");
  }
  manifest.flags ??= {};
  manifest.tasks ??= {};
  manifest.experiments ??= {};
  return manifest;
}

/** The effective flags: package defaults, then the bundle's, then the caller's overrides. */
export function resolveFlags(
  bundleFlags: Readonly<Record<string, boolean>> = {},
  overrides: Readonly<Record<string, boolean>> = {},
): Record<string, boolean> {
  const values = Object.fromEntries(FLAG_NAMES.map((name) => [name, name !== MASTER_FLAG]));
  for (const source of [bundleFlags, overrides]) {
    for (const [name, value] of Object.entries(source)) {
      if (!(name in values)) throw new RangeError(`unknown flag ${name}; known: ${FLAG_NAMES.join(", ")}`);
      values[name] = Boolean(value);
    }
  }
  return values;
}

/** Whether a task may use its model: enable_cpu_ml and the task's own flag are on. */
export const mlEnabled = (flags: Record<string, boolean>, spec: TaskSpec): boolean =>
  flags[MASTER_FLAG] && (flags[spec.flag] ?? true);

/**
 * A task's plan (Predictor._plan). The feature schema is the bundle's: its edge graphs were
 * generated with it. `fileFailures`: reasons found while fetching and verifying each model
 * file (file_missing, sha256_mismatch, load_error, io_mismatch).
 */
export function taskPlan(
  spec: TaskSpec,
  manifest: Manifest,
  flags: Record<string, boolean>,
  inputDim: number,
  fileFailures: Readonly<Record<string, string>>,
): TaskPlan {
  const entry = manifest.tasks[spec.name];
  const reason = mlEnabled(flags, spec) ? (entry ? null : "no_model") : "disabled";
  if (reason !== null) {
    return { task: spec.name, reason, active: null, rollout: 0, experiments: [], staticFailures: {} };
  }
  const staticFailures: Record<string, string> = {};
  for (const [version, model] of Object.entries(entry.models)) {
    if (model.status === "retired") continue;
    if (model.feature_schema_version !== manifest.feature_schema_version || model.input_dim !== inputDim) {
      staticFailures[version] = "schema_mismatch";
    } else if (fileFailures[version]) {
      staticFailures[version] = fileFailures[version];
    }
  }
  const experiments: ExperimentRoute[] = Object.keys(manifest.experiments)
    .sort()
    .filter((id) => manifest.experiments[id].task === spec.name)
    .map((id) => {
      const exp = manifest.experiments[id];
      return {
        experimentId: id,
        variants: exp.variants,
        weights: exp.weights,
        coverage: exp.coverage ?? 1,
        salt: exp.salt ?? null,
      };
    });
  const active = entry.active_version;
  return {
    task: spec.name,
    reason: null,
    active,
    rollout: active === null ? 0 : entry.models[active].rollout_pct / 100,
    experiments,
    staticFailures,
  };
}

