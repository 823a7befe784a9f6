// The TypeScript rules against the golden vectors computed by mixai_inference.rules.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { ALIGN_INPUTS, Rules, TRACK_INPUTS } from "../src/rules.ts";
import { answerFields, finish, TASKS } from "../src/tasks.ts";

type Value = number | "nan" | "inf" | "-inf";
interface Case {
  features: Record<string, Value>;
  master_params: number[];
  preset_scores: number[];
  align_confidence: number;
}
const vectors = JSON.parse(
  readFileSync(new URL("./fixtures/engine_vectors.json", import.meta.url), "utf8"),
) as { rules: Case[] };

const decode = (v: Value): number => (v === "nan" ? NaN : v === "inf" ? Infinity : v === "-inf" ? -Infinity : v);
// A longer vector with the read names among others, in another order: lookup is by name.
const trackNames = ["padding_a", ...Object.values(TRACK_INPUTS).map((s) => s.name).reverse(), "padding_b"];
const alignNames = [...Object.values(ALIGN_INPUTS).map((s) => s.name), "padding_c"];
const rules = new Rules(trackNames, alignNames);
const row = (names: string[], features: Record<string, Value>) =>
  Float32Array.from(names, (name) => (name in features ? decode(features[name]) : 123.0));
const row64 = (names: string[], features: Record<string, Value>) =>
  names.map((name) => (name in features ? decode(features[name]) : 123.0));

function close(actual: number[], expected: number[], what: string): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) <= 1e-12 * Math.max(1, Math.abs(expected[i])), `${what}[${i}]: ${a} vs ${expected[i]}`));
}

test("every golden rules case is reproduced to 1e-12", () => {
  assert.ok(vectors.rules.length > 50);
  for (const c of vectors.rules) {
    const what = JSON.stringify(c.features);
    close(rules.masterParams(row64(trackNames, c.features)), c.master_params, `master ${what}`);
    close(rules.presetScores(row64(trackNames, c.features)), c.preset_scores, `preset ${what}`);
    close([rules.alignConfidence(row64(alignNames, c.features))], [c.align_confidence], `align ${what}`);
  }
});

test("float32 rows (what the feature graph gives) read as the numbers they hold", () => {
  for (const c of vectors.rules.slice(0, 10)) {
    const f32 = row(trackNames, c.features);
    assert.deepEqual(rules.masterParams(f32), rules.masterParams(Array.from(f32)));
    assert.deepEqual(rules.presetScores(f32), rules.presetScores(Array.from(f32)));
  }
});

test("missing names and wrong widths are refused with a clear message", () => {
  assert.throws(() => new Rules(["tempo_bpm"], alignNames), /the rules need features .*loudness_integrated_lufs/);
  assert.throws(() => rules.masterParams([1, 2, 3]), /must have 11 values, got 3/);
});

test("model outputs are made usable like TaskSpec.finish", () => {
  const [master, preset, align] = TASKS;
  assert.deepEqual(finish(master, [-30, 0, 0, 7, -31, 0.5, 1, 2]), [-20, 0, 0, 6, -30, 1, 0, 1.5]);
  assert.deepEqual(finish(preset, [0.5, 0.5, -0.1, 0, 0, 1]), [0.25, 0.25, 0, 0, 0, 0.5]);
  assert.equal(finish(preset, [-1, 0, 0, 0, 0, 0]), null);
  assert.deepEqual(finish(align, [1.5]), [1]);
  assert.deepEqual(answerFields(align, [0.25]), { confidence: 0.25 });
  const fields = answerFields(preset, [0.1, 0.6, 0.1, 0.1, 0.05, 0.05]);
  assert.equal(fields.preset, "bright_pop");
});
