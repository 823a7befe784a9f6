"""A misspelt or missing key in the project's parameters stops its reader with an error that
names the key, before any work: tried on every reader without a test of its own (the A/B,
monitoring, admin and demo-world readers have theirs)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mixai_inference.tasks import task_names
from mixai_ml.evaluation.evaluate import evaluate_task
from mixai_ml.evaluation.label_efficiency import learning_curve
from mixai_ml.evaluation.ood import evaluate_guard
from mixai_ml.export import registry
from mixai_ml.parameters import settings_section
from mixai_ml.personalization.evaluate import evaluate_personalization
from mixai_ml.pipelines.evaluation.nodes import evaluate_audio_domain, measure_label_efficiency
from mixai_ml.pipelines.export.nodes import build_edge_graphs
from mixai_ml.pipelines.features.nodes import extract_new_jobs
from mixai_ml.pipelines.purge.nodes import purge
from mixai_ml.training.artifact import TrainedTask
from mixai_ml.training.data import build_model_input
from mixai_ml.training.multitask import train_shared
from mixai_ml.training.reference import fit_reference
from mixai_ml.training.runs import train_task
from project_copy import changed_parameters as changed

TASK = task_names()[0]
EMPTY = pd.DataFrame()
UNTRAINED = TrainedTask(TASK, "skipped")
SKIPPED = {"training_job_id": "job-1", "status": "skipped", "reason": "too few samples"}


def _features(p: dict[str, Any]) -> object:
    return extract_new_jobs(EMPTY, EMPTY, EMPTY, {}, p["features"])


def _purge(p: dict[str, Any]) -> object:
    return purge(None, [], p["purge"], p["ab_analysis"])  # type: ignore[arg-type]


def _flags(p: dict[str, Any]) -> object:
    return registry.bundle_control(p["export"]["flags"], EMPTY, EMPTY)


def _ood_policy(p: dict[str, Any]) -> object:
    return registry.build_manifest(
        EMPTY,
        {},
        {},
        datetime.now(UTC),
        None,
        ood_policy=p["export"]["ood_policy"],  # type: ignore[arg-type]
    )


def _model(p: dict[str, Any]) -> object:
    return train_task(TASK, EMPTY, SKIPPED, p[TASK]["model"])


def _multitask(p: dict[str, Any]) -> object:
    return train_shared({}, p["multitask"]["mix"], now=datetime.now(UTC), trunk="mix")


def _reference(p: dict[str, Any]) -> object:
    rows = np.zeros((0, 1))
    return fit_reference(rows, rows, [], ["x"], ["y"], p["training"]["reference"])


def _split(p: dict[str, Any]) -> object:
    return build_model_input(TASK, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, p["training"]["split"])


def _evaluation(p: dict[str, Any]) -> object:
    return evaluate_task(EMPTY, UNTRAINED, p["evaluation"])


def _guard(p: dict[str, Any]) -> object:
    return evaluate_guard(UNTRAINED, EMPTY, EMPTY, EMPTY, p["evaluation"]["ood"])


def _personalization(p: dict[str, Any]) -> object:
    return evaluate_personalization(UNTRAINED, EMPTY, EMPTY, EMPTY, p["evaluation"])


def _curve(p: dict[str, Any]) -> object:
    return measure_label_efficiency(UNTRAINED, EMPTY, p[TASK]["model"], p["evaluation"])


def _pretrain(p: dict[str, Any]) -> object:
    curve = p["evaluation"]
    return learning_curve(
        TASK, EMPTY, p[TASK]["model"], curve["learning_curve"], curve["bootstrap"]
    )


CASES: list[tuple[Callable[[dict[str, Any]], object], dict[str, Any], str]] = [
    (
        _features,
        changed("features", "n_worker", 2),
        "features: unknown setting(s) n_worker; known: n_workers, scheduler",
    ),
    (
        _purge,
        changed("purge", "abandoned_after", drop=True),
        "purge: missing setting(s)",
    ),
    (
        lambda p: build_edge_graphs(p["export"]),
        changed("export", "ood_polcy", {}),
        "export: unknown setting(s) ood_polcy; known: edge, flags, ood_policy, user_adapters",
    ),
    (
        _flags,
        changed("export.flags", "enable_cpu_ml_", True),
        "export.flags: unknown flag(s)",
    ),
    (
        _ood_policy,
        changed("export.ood_policy", f"{TASK}_", "fallback"),
        f"export.ood_policy: unknown task(s) {TASK}_; known: ",
    ),
    (
        _model,
        changed(f"{TASK}.model", "baselines", {}),
        f"{TASK}.model: unknown setting(s)",
    ),
    (
        _model,
        changed(f"{TASK}.model.net", "hiden", [8]),
        f"{TASK}.model.net: unknown setting(s) hiden; known: dropout, hidden, seed",
    ),
    (
        _model,
        changed(f"{TASK}.model.fit", "patience", drop=True),
        f"{TASK}.model.fit: missing setting(s) patience",
    ),
    (
        _multitask,
        changed("multitask.mix.fit", "learning_rat", 0.1),
        "multitask.mix.fit: unknown setting(s) learning_rat",
    ),
    (
        _reference,
        changed("training.reference.components", "mayor", 8),
        "training.reference.components: unknown setting(s) mayor",
    ),
    (
        _split,
        changed("training.split", "sallt", "x"),
        "training.split: unknown setting(s) sallt",
    ),
    (
        _evaluation,
        changed("evaluation", "learning_curves", {}),
        "evaluation: unknown setting(s) learning_curves",
    ),
    (
        _guard,
        changed("evaluation.ood", "top_feature", 3),
        "evaluation.ood: unknown setting(s) top_feature; known: max_jobs, n_workers, shifts, ",
    ),
    (
        lambda p: evaluate_audio_domain(EMPTY, EMPTY, {}, p["evaluation"]["audio"]),
        changed("evaluation.audio", "sources", drop=True),
        "evaluation.audio: missing setting(s) sources",
    ),
    (
        _personalization,
        changed("evaluation.personalization", "returning", 5),
        "evaluation.personalization: unknown setting(s) returning",
    ),
    # a disabled curve must be spelt right too, or it stays enabled
    (
        _curve,
        changed("evaluation.learning_curve", "enable", False),
        "evaluation.learning_curve: unknown setting(s) enable; known: enabled, ",
    ),
    (
        _pretrain,
        changed("evaluation.learning_curve.pretrain", "max_epoch", 3),
        "evaluation.learning_curve.pretrain: unknown setting(s) max_epoch",
    ),
]


@pytest.mark.parametrize(("reader", "params", "message"), CASES)
def test_a_bad_key_is_named_before_any_work(
    reader: Callable[[dict[str, Any]], object], params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        reader(params)


def test_a_section_must_be_a_mapping_and_empty_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"features must be a mapping of settings, got 3"):
        settings_section(3, "features")
    assert settings_section(None, "features", optional=("n_workers",)) == {}
