// Deterministic A/B assignment and the routing of each task: mixai_inference.routing, line for
// line (docs/deployment.md). assignment_vectors.json (tests/routing.test.ts) locks it.

import { sha256 } from "./sha256.ts";

const encoder = new TextEncoder(); // WHATWG UTF-8: a lone surrogate becomes U+FFFD, as in Python

/** A uniform number in [0, 1): the first 4 bytes (big-endian) of sha256(`salt:kind:userId`). */
export function hashUnit(salt: string, kind: string, userId: string): number {
  const digest = sha256(encoder.encode(`${salt}:${kind}:${userId}`));
  return new DataView(digest.buffer).getUint32(0) / 2 ** 32;
}

/** The variant of `userId` in `experimentId`, or null outside the coverage. */
export function assignVariant(
  userId: string,
  experimentId: string,
  weights: Readonly<Record<string, number>>,
  coverage = 1,
  salt: string | null = null,
): string | null {
  const names = Object.keys(weights).sort(); // ASCII names: code-unit order = code-point order
  if (names.length === 0) {
    throw new RangeError("weights is empty: give at least one variant, e.g. {control: 1}");
  }
  const values = names.map((name) => Number(weights[name]));
  let total = 0;
  for (const value of values) total += value; // in name order, uncompensated, as Python does
  if (values.some((w) => !Number.isFinite(w) || w < 0) || !(total > 0)) {
    throw new RangeError("weights must be finite, non-negative and not all zero");
  }
  if (!(Number.isFinite(coverage) && coverage >= 0 && coverage <= 1)) {
    throw new RangeError(`coverage must be in [0, 1], got ${coverage}`);
  }
  const key = salt ?? experimentId;
  if (hashUnit(key, "coverage", String(userId)) >= coverage) return null;
  const draw = hashUnit(key, "variant", String(userId));
  let cumulative = 0;
  for (let i = 0; i < names.length; i++) {
    cumulative += values[i];
    if (draw < cumulative / total) return names[i];
  }
  // draw < 1 == cumulative / total unless rounding leaves the last bucket a hair short
  for (let i = names.length - 1; i >= 0; i--) if (values[i] > 0) return names[i];
  return null;
}

/** The rollout of a task's active version draws from key `rollout:<task>`. */
export const ROLLOUT_SALT_PREFIX = "rollout:";

export interface ExperimentRoute {
  experimentId: string;
  variants: Readonly<Record<string, string | null>>; // variant -> version, null: the rules
  weights: Readonly<Record<string, number>>;
  coverage: number;
  salt: string | null;
}

/** What a task can serve, decided once when the bundle is read (routing.TaskPlan). */
export interface TaskPlan {
  task: string;
  reason: string | null; // the whole task answers from the rules for this reason
  active: string | null;
  rollout: number; // the active version's rollout_pct / 100
  experiments: readonly ExperimentRoute[]; // ids in ascending order
  staticFailures: Readonly<Record<string, string>>; // version -> reason found at load
}

/** Where one user's request for a task goes; a reason means the rules answer. */
export interface Decision {
  version: string | null;
  variant: string | null;
  experimentId: string | null;
  reason: string | null;
}

/** Route `userId` (or an anonymous call) for `plan`'s task, as mixai_inference.routing.decide. */
export function decide(plan: TaskPlan, userId: string | null): Decision {
  if (plan.reason !== null) {
    return { version: null, variant: null, experimentId: null, reason: plan.reason };
  }
  let version = plan.active;
  let variant: string | null = null;
  let experimentId: string | null = null;
  if (userId !== null) {
    for (const experiment of plan.experiments) {
      variant = assignVariant(
        userId,
        experiment.experimentId,
        experiment.weights,
        experiment.coverage,
        experiment.salt,
      );
      if (variant !== null) {
        version = experiment.variants[variant];
        experimentId = experiment.experimentId;
        break;
      }
    }
  }
  let reason: string | null = null;
  if (variant !== null) {
    reason = version === null ? "variant_rules" : null;
  } else if (version === null) {
    reason = "no_model";
  } else if (userId === null) {
    reason = plan.rollout > 0 ? null : "rollout";
  } else {
    const salt = ROLLOUT_SALT_PREFIX + plan.task;
    const inRollout = assignVariant(userId, salt, { [version]: 1 }, plan.rollout) !== null;
    if (!inRollout) {
      version = null;
      reason = "rollout";
    }
  }
  if (reason === null && version !== null) reason = plan.staticFailures[version] ?? null;
  return { version, variant, experimentId, reason };
}
