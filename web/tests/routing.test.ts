// The shipped assignment vectors (src/mixai_inference/assignment_vectors.json) and the routing
// decisions written by Python (tests/fixtures/engine_vectors.json) must be reproduced exactly.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { assignVariant, decide, hashUnit, ROLLOUT_SALT_PREFIX, type TaskPlan } from "../src/routing.ts";

interface Case {
  user_id: string;
  experiment_id: string;
  salt: string | null;
  weights: Record<string, number>;
  coverage: number;
  unit_coverage: number;
  unit_variant: number;
  expected: string | null;
}

const shipped = JSON.parse(
  readFileSync(new URL("../../src/mixai_inference/assignment_vectors.json", import.meta.url), "utf8"),
) as { cases: Case[] };
const engineVectors = JSON.parse(
  readFileSync(new URL("./fixtures/engine_vectors.json", import.meta.url), "utf8"),
) as { plans: TaskPlan[]; decisions: { plan: number; user_id: string | null; expected: ReturnType<typeof decide> }[] };

test("every shipped assignment vector is reproduced", () => {
  assert.ok(shipped.cases.length >= 300);
  for (const c of shipped.cases) {
    const key = c.salt ?? c.experiment_id;
    assert.equal(hashUnit(key, "coverage", c.user_id), c.unit_coverage, JSON.stringify(c));
    assert.equal(hashUnit(key, "variant", c.user_id), c.unit_variant, JSON.stringify(c));
    assert.equal(assignVariant(c.user_id, c.experiment_id, c.weights, c.coverage, c.salt), c.expected);
  }
});

test("the vectors cover lone surrogates, which UTF-8 encodes as U+FFFD like Python", () => {
  const lone = shipped.cases.filter((c) => /[\ud800-\udfff]/.test(c.user_id) && !/[\ud800-\udbff][\udc00-\udfff]/.test(c.user_id));
  assert.ok(lone.length > 0);
  for (const c of lone) assert.equal(hashUnit("s", "k", c.user_id), hashUnit("s", "k", c.user_id.replace(/[\ud800-\udfff]/g, "\ufffd")));
});

test("invalid weights and coverages are refused", () => {
  assert.throws(() => assignVariant("u", "e", {}), /weights is empty/);
  assert.throws(() => assignVariant("u", "e", { a: -1, b: 2 }), /non-negative/);
  assert.throws(() => assignVariant("u", "e", { a: 0 }), /not all zero/);
  assert.throws(() => assignVariant("u", "e", { a: 1 }, 1.5), /coverage/);
});

test("routing decisions equal Python's decide for every case", () => {
  assert.ok(engineVectors.decisions.length >= 20);
  for (const { plan, user_id, expected } of engineVectors.decisions) {
    const routed = engineVectors.plans[plan];
    assert.deepEqual(decide(routed, user_id), expected, JSON.stringify({ routed, user_id }));
  }
});

test("raising a rollout only adds users", () => {
  const plan = (rollout: number): TaskPlan => ({
    task: "master_reg",
    reason: null,
    active: "v1",
    rollout,
    experiments: [],
    staticFailures: {},
  });
  const users = Array.from({ length: 400 }, (_, i) => `user-${i}`);
  const inAt = (rollout: number) => new Set(users.filter((u) => decide(plan(rollout), u).reason === null));
  const low = inAt(0.2);
  const high = inAt(0.6);
  for (const user of low) assert.ok(high.has(user));
  assert.ok(Math.abs(low.size / users.length - 0.2) < 0.07);
  assert.equal(ROLLOUT_SALT_PREFIX, "rollout:");
});
