"""Golden vectors that lock the web engine's TypeScript ports of ``mixai_inference``.

``web/tests/fixtures/engine_vectors.json`` holds, computed here by the Python code:

* ``rules``: feature values the rules read (typical, extreme, out of range, NaN, ±inf) with
  the mastering parameters, preset scores and alignment confidence of
  :class:`mixai_inference.rules.Rules`;
* ``plans`` and ``decisions``: routing plans (flags off, rollouts, experiments with model
  and rules variants, salts, broken versions) and, per plan and user, what
  :func:`mixai_inference.routing.decide` answers.

``npm test`` (web/tests/) reproduces every case; ``tests/edge/test_web_unit.py`` fails when
the committed file is out of date. Regenerate with::

    python -m mixai_ml.edge.web_vectors web/tests/fixtures/engine_vectors.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mixai_inference.routing import Decision, ExperimentRoute, TaskPlan, decide
from mixai_inference.rules import ALIGN_INPUTS, TRACK_INPUTS, Rules
from mixai_inference.tasks import ALIGN_CONF, MASTER_REG, PRESET_CLS

__all__ = ["dump_vectors", "engine_vectors", "main"]

_SPECIAL = {math.inf: "inf", -math.inf: "-inf"}


def _encode(value: float) -> float | str:
    """JSON has no NaN or infinity: they travel as the strings ``nan``, ``inf``, ``-inf``."""
    return "nan" if math.isnan(value) else _SPECIAL.get(value, value)


def _rule_cases(rng: np.random.Generator, n_random: int) -> list[dict[str, Any]]:
    inputs = {**TRACK_INPUTS, **ALIGN_INPUTS}
    rows = [{spec.name: spec.typical for spec in inputs.values()}]
    for spec in inputs.values():  # each input at its bounds, beyond them, and not finite
        span = spec.high - spec.low
        for value in (spec.low, spec.high, spec.low - span, spec.high + span, math.nan, math.inf):
            rows.append({**rows[0], spec.name: value})
    for _ in range(n_random):
        rows.append(
            {
                spec.name: float(rng.uniform(spec.low - 0.1 * (spec.high - spec.low), spec.high))
                for spec in inputs.values()
            }
        )
    rules = Rules(
        [spec.name for spec in TRACK_INPUTS.values()],
        [spec.name for spec in ALIGN_INPUTS.values()],
    )
    cases = []
    for row in rows:
        track = np.array([[row[spec.name] for spec in TRACK_INPUTS.values()]])
        align = np.array([[row[spec.name] for spec in ALIGN_INPUTS.values()]])
        cases.append(
            {
                "features": {name: _encode(value) for name, value in row.items()},
                "master_params": rules.master_params(track)[0].tolist(),
                "preset_scores": rules.preset_scores(track)[0].tolist(),
                "align_confidence": float(rules.align_confidence(align)[0]),
            }
        )
    return cases


def _plans() -> list[TaskPlan]:
    pair = ExperimentRoute(
        "exp-a", {"control": "v1", "treatment": "v2"}, {"control": 1, "treatment": 1}, 0.5, None
    )
    rules_variant = ExperimentRoute(
        "exp-rules",
        {"control": None, "treatment": "v1"},
        {"control": 3, "treatment": 1},
        0.6,
        "salted",
    )
    later = ExperimentRoute(
        "exp-b", {"a": "v2", "b": "v1", "c": None}, {"a": 2, "b": 0, "c": 1}, 0.3, None
    )
    return [
        TaskPlan(MASTER_REG, "disabled", None, 0.0, (), {}),
        TaskPlan(MASTER_REG, None, "v1", 1.0, (), {}),
        TaskPlan(MASTER_REG, None, "v1", 0.3, (), {}),
        TaskPlan(PRESET_CLS, None, "v1", 0.0, (), {}),
        TaskPlan(PRESET_CLS, None, "v1", 1.0, (pair,), {}),
        TaskPlan(PRESET_CLS, None, "v1", 0.5, (rules_variant,), {}),
        TaskPlan(ALIGN_CONF, None, None, 0.0, (pair,), {}),
        TaskPlan(ALIGN_CONF, None, "v1", 1.0, (pair,), {"v2": "sha256_mismatch"}),
        TaskPlan(MASTER_REG, None, "v1", 0.8, (pair, later), {"v1": "file_missing"}),
    ]


def _plan_json(plan: TaskPlan) -> dict[str, Any]:
    return {
        "task": plan.task,
        "reason": plan.reason,
        "active": plan.active,
        "rollout": plan.rollout,
        "experiments": [
            {
                "experimentId": e.experiment_id,
                "variants": dict(e.variants),
                "weights": dict(e.weights),
                "coverage": e.coverage,
                "salt": e.salt,
            }
            for e in plan.experiments
        ],
        "staticFailures": dict(plan.static_failures),
    }


def _decision_json(decision: Decision) -> dict[str, str | None]:
    return {
        "version": decision.version,
        "variant": decision.variant,
        "experimentId": decision.experiment_id,
        "reason": decision.reason,
    }


def engine_vectors(n_random: int = 20, seed: int = 14) -> dict[str, Any]:
    """The golden vectors (see the module documentation)."""
    users: list[str | None] = [None, "", "ユーザー", *(f"user-{k}" for k in range(12))]
    plans = _plans()
    return {
        "description": (
            "Golden vectors of the web engine's rules and routing, computed by "
            "mixai_inference (python -m mixai_ml.edge.web_vectors). Non-finite inputs are "
            "the strings nan, inf, -inf."
        ),
        "rules": _rule_cases(np.random.default_rng(seed), n_random),
        "plans": [_plan_json(plan) for plan in plans],
        "decisions": [
            {"plan": k, "user_id": user, "expected": _decision_json(decide(plan, user))}
            for k, plan in enumerate(plans)
            for user in users
        ],
    }


def dump_vectors(vectors: dict[str, Any]) -> str:
    """The file's text: compact JSON, one line."""
    return json.dumps(vectors, ensure_ascii=False, separators=(",", ":")) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mixai_ml.edge.web_vectors", description=__doc__
    )
    parser.add_argument("path", type=Path, help="the JSON file to write")
    args = parser.parse_args(argv)
    args.path.write_text(dump_vectors(engine_vectors()), encoding="utf-8")
    print(args.path)


if __name__ == "__main__":
    main()
