// Flags and the serving plan of each task, as mixai_inference.flags and Predictor._plan.

import assert from "node:assert/strict";
import { test } from "node:test";

import { BundleError, parseManifest, resolveFlags, taskPlan, type Manifest } from "../src/manifest.ts";
import { TASKS } from "../src/tasks.ts";

const [master] = TASKS;
const model = (status: string, extra: object = {}) => ({
  file: `m-${status}.onnx`,
  sha256: "0".repeat(64),
  status,
  rollout_pct: status === "active" ? 40 : 0,
  feature_schema_version: "1.0",
  input_name: "features",
  input_dim: 175,
  output_name: "params",
  output_dim: 8,
  ...extra,
});
const manifest = (): Manifest =>
  parseManifest(
    JSON.stringify({
      format_version: 1,
      created_at: "2026-01-01T00:00:00Z",
      feature_schema_version: "1.0",
      flags: { enable_cpu_ml: true },
      tasks: {
        master_reg: {
          active_version: "a",
          models: { a: model("active"), b: model("candidate"), c: model("retired"), d: model("shadow", { input_dim: 160 }) },
        },
      },
      experiments: {
        "z-exp": { task: "master_reg", variants: { x: "a", y: "b" }, weights: { x: 1, y: 1 } },
        "a-exp": { task: "master_reg", variants: { x: "a", y: null }, weights: { x: 1, y: 1 }, coverage: 0.5, salt: "s" },
        other: { task: "preset_cls", variants: { x: null }, weights: { x: 1 } },
      },
    }),
  );

test("flags: package defaults, then the bundle's, then overrides", () => {
  assert.deepEqual(resolveFlags(), {
    enable_cpu_ml: false,
    enable_master_regression: true,
    enable_preset_recommendation: true,
    enable_align_confidence: true,
  });
  const flags = resolveFlags({ enable_cpu_ml: true }, { enable_align_confidence: false });
  assert.equal(flags.enable_cpu_ml, true);
  assert.equal(flags.enable_align_confidence, false);
  assert.throws(() => resolveFlags({ enable_gpu: true }), /unknown flag enable_gpu/);
});

test("a task's plan: experiments in id order, rollout, schema and file failures", () => {
  const plan = taskPlan(master, manifest(), resolveFlags({ enable_cpu_ml: true }), 175, { b: "sha256_mismatch" });
  assert.equal(plan.reason, null);
  assert.equal(plan.active, "a");
  assert.equal(plan.rollout, 0.4);
  assert.deepEqual(plan.experiments.map((e) => e.experimentId), ["a-exp", "z-exp"]);
  assert.equal(plan.experiments[0].salt, "s");
  assert.equal(plan.experiments[1].coverage, 1);
  assert.deepEqual(plan.staticFailures, { b: "sha256_mismatch", d: "schema_mismatch" });
});

test("flags off, or no entry: the whole task answers from the rules", () => {
  assert.equal(taskPlan(master, manifest(), resolveFlags(), 175, {}).reason, "disabled");
  const empty = { ...manifest(), tasks: {} };
  assert.equal(taskPlan(master, empty, resolveFlags({ enable_cpu_ml: true }), 175, {}).reason, "no_model");
});

test("unreadable and newer manifests are refused", () => {
  assert.throws(() => parseManifest("{"), BundleError);
  assert.throws(() => parseManifest('{"format_version": 2, "feature_schema_version": "1"}'), /newer than this app reads/);
  assert.throws(() => parseManifest("[]"), /expected an object/);
});
