"""Learning curves: how a task's model improves with labelled jobs, from scratch and with transfer.

For each number of labels ``n`` (``evaluation.learning_curve.sizes`` below the available
jobs, then all of them), ``n`` labelled jobs are drawn from the users outside the test split
(nested draws with ``repeats`` seeds; all the jobs once). The draw's train and validation
users train a network from scratch, and fine-tune one pre-trained on the rules' answers over
every non-test job's features (:mod:`mixai_ml.training.transfer`; no label is used to
pre-train). Both are scored on the whole test split, averaged over the repeats, with paired
bootstrap CIs over the test users of transfer minus scratch and of each minus the rules.

``ML_MIN_SAMPLES`` counts a task's trainable jobs, test users included: the recommended
value is the smallest ``n`` from which the model beats the rules with a CI that excludes
zero at every larger ``n`` too, divided by the share of jobs outside the test split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from mixai_inference.tasks import TaskSpec, task_spec
from mixai_ml.evaluation.bootstrap import paired_bootstrap
from mixai_ml.evaluation.metrics import primary_metric_function
from mixai_ml.evaluation.promotion import gain
from mixai_ml.parameters import settings_section
from mixai_ml.training.baselines import rules_predict
from mixai_ml.training.data import arrays
from mixai_ml.training.models import predict
from mixai_ml.training.trainer import FitConfig
from mixai_ml.training.transfer import fine_tune, pretrain_on_rules

VARIANTS = ("scratch", "transfer")


def averaged(metric: Callable[[np.ndarray, np.ndarray], float]) -> Callable[..., float]:
    """``metric`` of predictions stacked ``(n, repeats, ...)``, averaged over the repeats."""

    def mean_over_repeats(truth: np.ndarray, stacked: np.ndarray) -> float:
        return float(np.mean([metric(truth, stacked[:, r]) for r in range(stacked.shape[1])]))

    return mean_over_repeats


def draw(pool: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """The first ``size`` rows of a seeded shuffle of ``pool`` (nested across sizes)."""
    order = np.random.default_rng(seed).permutation(len(pool))
    return pool.iloc[np.sort(order[:size])]


def _interval(
    targets: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    metric: Callable[..., float],
    users: np.ndarray,
    bootstrap: Mapping[str, Any],
) -> dict[str, float]:
    result = paired_bootstrap(targets, a, b, metric, groups=users, **bootstrap)
    return {key: result[key] for key in ("difference", "ci_low", "ci_high")}


def learning_curve(
    task: str,
    model_input: pd.DataFrame,
    model_params: Mapping[str, Any],
    curve: Mapping[str, Any],
    bootstrap: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Scratch and transfer at each number of labels, scored on the test split.

    Args:
        task: a registered task.
        model_input: its model input (``split``: the test users are held out).
        model_params: ``<task>.model``: the ``net`` and ``fit`` of training.
        curve: ``sizes`` (numbers of labelled jobs), ``repeats``, ``seed`` and
            ``pretrain`` (the pre-training's :class:`FitConfig` fields).
        bootstrap: :func:`paired_bootstrap` settings.

    Returns:
        One entry per size: ``n_labels``, ``scratch``, ``transfer``, ``rules`` (the
        primary metric), ``diff`` (transfer − scratch) with ``diff_ci_low`` /
        ``diff_ci_high``, and ``scratch_vs_rules`` / ``transfer_vs_rules`` intervals.
        Empty without test users or labelled jobs.
    """
    net = model_params["net"]
    fit_config = FitConfig.from_params(model_params["fit"], f"{task}.model.fit")
    pretrain_config = FitConfig.from_params(curve["pretrain"], "evaluation.learning_curve.pretrain")
    spec = task_spec(task)
    test_inputs, targets = arrays(model_input, task, "test")
    pool = model_input[model_input["split"] != "test"]
    if not len(test_inputs) or pool.empty:
        return []
    users = model_input.loc[model_input["split"] == "test", "user_id"].astype(str).to_numpy()
    names = list(spec.input_names())
    pretrained = pretrain_on_rules(
        task,
        pool.loc[pool["split"] == "train", names].to_numpy(np.float32, copy=True),
        pool.loc[pool["split"] == "validation", names].to_numpy(np.float32, copy=True),
        net,
        pretrain_config,
    )
    rules = rules_predict(spec, test_inputs)
    metric = averaged(primary_metric_function(spec))
    sizes = sorted({*(int(n) for n in curve["sizes"] if int(n) < len(pool)), len(pool)})
    entries = []
    for size in sizes:
        stacks: dict[str, list[np.ndarray]] = {variant: [] for variant in VARIANTS}
        repeats = int(curve["repeats"]) if size < len(pool) else 1  # all jobs: one draw
        for repeat in range(repeats):
            drawn = draw(pool, size, int(curve["seed"]) + repeat)
            train, validation = arrays(drawn, task, "train"), arrays(drawn, task, "validation")
            if not len(train[0]) or not len(validation[0]):
                continue
            for variant, start in zip(VARIANTS, (None, pretrained), strict=True):
                model = fine_tune(task, start, train, validation, net, fit_config)
                stacks[variant].append(_outputs(spec, predict(model, test_inputs)))
        if not stacks["scratch"]:
            continue
        stacked = {variant: np.stack(rows, axis=1) for variant, rows in stacks.items()}
        baseline = np.repeat(_outputs(spec, rules)[:, None], len(stacks["scratch"]), axis=1)
        versus = _interval(
            targets, stacked["transfer"], stacked["scratch"], metric, users, bootstrap
        )
        entries.append(
            {
                "n_labels": size,
                "repeats": len(stacks["scratch"]),
                **{variant: metric(targets, stacked[variant]) for variant in VARIANTS},
                "rules": metric(targets, baseline),
                "diff": versus["difference"],
                "diff_ci_low": versus["ci_low"],
                "diff_ci_high": versus["ci_high"],
                **{
                    f"{variant}_vs_rules": _interval(
                        targets, stacked[variant], baseline, metric, users, bootstrap
                    )
                    for variant in VARIANTS
                },
            }
        )
    return entries


def _outputs(spec: TaskSpec, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[:, 0] if spec.kind == "probability" else values


def reliably_better(spec: TaskSpec, interval: Mapping[str, float]) -> bool:
    """Whether a CI of model − rules lies entirely on the better side of zero."""
    return gain(spec, interval["ci_low"], 0.0) > 0 and gain(spec, interval["ci_high"], 0.0) > 0


def recommended_min_samples(
    task: str, curve: list[dict[str, Any]], labelled_share: float
) -> dict[str, Any]:
    """Per variant, the least labelled jobs from which the model reliably beats the rules.

    Returns:
        For ``scratch`` and ``transfer``: ``n_labels`` (``None`` when the model never
        does at every size from some point on) and ``min_samples``: that number counted as
        ``ML_MIN_SAMPLES`` counts (divided by ``labelled_share``, the share of trainable
        jobs outside the test split), rounded up to a multiple of 50.
    """
    spec = task_spec(task)
    result: dict[str, Any] = {}
    for variant in VARIANTS:
        first = None
        for entry in reversed(curve):
            if not reliably_better(spec, entry[f"{variant}_vs_rules"]):
                break
            first = entry["n_labels"]
        samples = None if first is None else 50 * math.ceil(first / labelled_share / 50)
        result[variant] = {"n_labels": first, "min_samples": samples}
    return result


def curve_settings(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """``evaluation.learning_curve``, its keys checked (before ``enabled`` is read, so that a
    misspelt switch is an error rather than a curve left on)."""
    return settings_section(
        params,
        "evaluation.learning_curve",
        required=("enabled", "sizes", "repeats", "seed", "pretrain"),
    )


def label_efficiency(
    task: str,
    model_input: pd.DataFrame,
    model_params: Mapping[str, Any],
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``learning_curve`` and ``label_efficiency`` blocks of a task's evaluation."""
    settings = curve_settings(params["learning_curve"])
    curve = learning_curve(task, model_input, model_params, settings, params["bootstrap"])
    if not curve:
        return {}
    labelled_share = float((model_input["split"] != "test").mean())
    return {
        "learning_curve": curve,
        "label_efficiency": {
            "recommended": recommended_min_samples(task, curve, labelled_share),
            "repeats": int(settings["repeats"]),
            "pretrain": "the rules' answers on every non-test job (no labels)",
        },
    }
