"""Empirical-Bayes per-user adapters, shrunk toward the population (docs/models.md).

A user's adapter is a function of two sufficient statistics of their labelled jobs: how many
there are, and the sum of one vector per job (:func:`job_statistics`):

* ``regression``: the residual ``label − population answer``. The user's offset is the
  posterior mean of a normal random effect, ``Σ residuals / (n + λ)`` per output, with
  ``λ = σ² / τ²`` the ratio of the within-user residual variance to the between-user
  variance of the users' true offsets (method of moments on held-out users, a one-way
  random-effects model; Searle, Casella & McCulloch, *Variance Components*, 1992, ch. 3);
* ``classification``: the one-hot label beside the population's probabilities. The adapter
  is the log-ratio of the classes the user chose to the classes the model expected for
  their jobs, each smoothed by ``α π`` pseudo-jobs at the population's class shares ``π``:
  ``log((chosen + α π) / (expected + α π))`` (Bayes' rule with the user's prior,
  :func:`mixai_inference.adapters.adjust`). Against what the model *expected* rather than
  against ``π``, so that a taste the features already explain (a user who sings mostly one
  style) is not counted twice. ``α`` is the maximum of the Dirichlet-multinomial marginal
  likelihood of the users' label counts (Minka, *Estimating a Dirichlet distribution*,
  2000).

A user with no jobs gets zeros: the population's answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import gammaln

from mixai_inference.adapters import adjust
from mixai_inference.tasks import TaskSpec

ALPHA_GRID = np.geomspace(0.05, 1e4, 200)
"""The concentrations a classification prior's ``α`` is chosen from."""

STRENGTHS = np.linspace(0.0, 1.0, 11)
"""The strengths an adapter's numbers are scaled by, chosen on held-out users."""


@dataclass(frozen=True)
class Prior:
    """How a task's adapters shrink toward the population.

    Attributes:
        shrinkage: ``regression``: ``λ`` per output (pseudo-jobs at offset zero);
            ``classification``: ``α`` (pseudo-jobs at the population's shares), as one value.
        base_rates: ``classification``: the population's class shares ``π``.
        details: what the estimate rests on (variances, users), for the report.
        strength: the factor the numbers are scaled by (:func:`choose_strength`): 1 trusts
            the model of the users, 0 switches the adapters off.
    """

    shrinkage: np.ndarray
    base_rates: np.ndarray | None
    details: Mapping[str, Any]
    strength: float = 1.0

    def numbers(self, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Adapter numbers ``(m, k)`` from per-user sums of :func:`job_statistics` ``(m, k)``
        and job counts ``(m,)``."""
        counts = np.asarray(counts, dtype=float)[:, None]
        if not np.isfinite(self.shrinkage).all() or self.strength == 0:  # the population
            width = len(self.shrinkage) if self.base_rates is None else len(self.base_rates)
            return np.zeros((len(counts), width))
        if self.base_rates is None:
            return self.strength * np.asarray(sums / (counts + self.shrinkage[None, :]))
        alpha, rates = float(self.shrinkage[0]), self.base_rates[None, :]
        chosen, expected = np.split(np.asarray(sums, dtype=float), 2, axis=1)
        log_ratio = np.log((chosen + alpha * rates) / (expected + alpha * rates))
        return self.strength * np.asarray(log_ratio)

    def to_json(self) -> dict[str, Any]:
        return {
            "shrinkage": self.shrinkage.tolist(),
            "base_rates": None if self.base_rates is None else self.base_rates.tolist(),
            "strength": self.strength,
            **self.details,
        }


def job_statistics(spec: TaskSpec, targets: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Each job's contribution to its user's adapter: ``(n, k)`` residuals (regression), or
    ``(n, 2k)`` the one-hot label then the population's probabilities (classification),
    with ``k = len(spec.outputs)``.

    Args:
        spec: A personalised task.
        targets: ``(n, k)`` label values (regression) or ``(n,)`` class indices.
        outputs: ``(n, k)`` the population model's answers.
    """
    if spec.kind == "regression":
        return np.asarray(targets - outputs, dtype=float)
    chosen = np.eye(len(spec.outputs))[np.asarray(targets, dtype=int)]
    return np.hstack([chosen, np.asarray(outputs, dtype=float)])


def fit_prior(
    spec: TaskSpec, statistics: np.ndarray, users: np.ndarray, base_rates: np.ndarray | None
) -> Prior:
    """Estimate how much to trust a user's own jobs, from other users' jobs.

    Args:
        spec: A personalised task.
        statistics: :func:`job_statistics` of held-out jobs (for a regression, residuals of
            a model that did not train on these users).
        users: The user of each row.
        base_rates: ``classification``: the population's class shares (e.g. of the training
            labels); ignored for a regression.

    Returns:
        The prior. With fewer than two users of two or more jobs nothing can be told apart
        from noise: infinite shrinkage, every adapter zero.
    """
    unique, inverse, counts = np.unique(users, return_inverse=True, return_counts=True)
    repeat = counts >= 2
    width = statistics.shape[1]
    if repeat.sum() < 2:
        rates = None if base_rates is None else np.asarray(base_rates, dtype=float)
        details = {"n_users": len(unique), "note": "too few returning users: no adapters"}
        return Prior(np.full(1 if rates is not None else width, np.inf), rates, details)
    sums = np.zeros((len(unique), width))
    np.add.at(sums, inverse, statistics)
    if spec.kind == "regression":
        return _offset_prior(statistics, inverse, sums, counts)
    if base_rates is None:
        raise ValueError(f"{spec.name}: a classification prior needs the population's shares")
    rates = np.clip(np.asarray(base_rates, dtype=float), 1e-6, None)
    rates = rates / rates.sum()
    chosen = sums[repeat, : len(rates)]
    return _class_prior(chosen, counts[repeat], rates)


def _offset_prior(
    residuals: np.ndarray, inverse: np.ndarray, sums: np.ndarray, counts: np.ndarray
) -> Prior:
    """Method-of-moments variance components of a one-way random-effects model."""
    means = sums / counts[:, None]
    within_ss = ((residuals - means[inverse]) ** 2).sum(axis=0)
    within = within_ss / max(int((counts - 1).sum()), 1)
    returning = counts >= 2
    between = means[returning].var(axis=0, ddof=1) - within * np.mean(1.0 / counts[returning])
    between = np.maximum(between, 1e-6 * within + 1e-12)  # no spread: shrink nearly all the way
    return Prior(
        within / between,
        None,
        {
            "within_user_variance": within.tolist(),
            "between_user_variance": between.tolist(),
            "n_users": len(counts),
            "n_returning_users": int(returning.sum()),
        },
    )


def _class_prior(counts_per_class: np.ndarray, counts: np.ndarray, rates: np.ndarray) -> Prior:
    """``α`` of the largest Dirichlet-multinomial likelihood of the users' label counts."""
    alpha = ALPHA_GRID[:, None, None]
    log_likelihood = (
        gammaln(alpha[:, :, 0])
        - gammaln(counts[None, :] + alpha[:, :, 0])
        + (gammaln(counts_per_class[None] + alpha * rates) - gammaln(alpha * rates)).sum(axis=2)
    ).sum(axis=1)
    best = float(ALPHA_GRID[int(np.argmax(log_likelihood))])
    return Prior(
        np.array([best]),
        rates,
        {"n_returning_users": len(counts)},
    )


def personalised_outputs(spec: TaskSpec, outputs: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """The population's answers ``(n, k)`` adjusted by each row's adapter numbers ``(n, k)``,
    exactly as the predictor does (:func:`mixai_inference.adapters.adjust`, then
    :meth:`TaskSpec.finish <mixai_inference.tasks.TaskSpec.finish>`)."""
    rows = []
    for values, row_numbers in zip(outputs.tolist(), numbers.tolist(), strict=True):
        finished = spec.finish(adjust(spec, values, row_numbers))
        rows.append(values if finished is None else finished)
    return np.asarray(rows, dtype=float).reshape(outputs.shape)


def choose_strength(
    spec: TaskSpec,
    prior: Prior,
    targets: np.ndarray,
    outputs: np.ndarray,
    users: np.ndarray,
) -> Prior:
    """The prior with the strength that scores best when each held-out job is answered with
    the adapter of its user's *other* jobs (leave one out): the least mean normalised
    absolute error (regression), or the largest mean log-likelihood of the chosen class
    (classification). Where the adapters would not help, the strength is 0.
    """
    statistics = job_statistics(spec, targets, outputs)
    frame = pd.DataFrame(statistics).groupby(users)
    others = frame.transform("sum").to_numpy() - statistics
    counts = frame[0].transform("size").to_numpy() - 1
    numbers = replace(prior, strength=1.0).numbers(others, counts)
    scores = []
    for strength in STRENGTHS:
        answered = personalised_outputs(spec, outputs, strength * numbers)
        if spec.kind == "regression":
            spans = np.array([high - low for low, high in spec.ranges.values()])
            scores.append(-np.mean(np.abs(answered - targets) / spans))
        else:
            chosen = answered[np.arange(len(targets)), np.asarray(targets, dtype=int)]
            scores.append(np.mean(np.log(np.clip(chosen, 1e-12, None))))
    best = float(STRENGTHS[int(np.argmax(scores))])
    details = {**prior.details, "strength_scores": [float(score) for score in scores]}
    return replace(prior, strength=best, details=details)


def task_prior(spec: TaskSpec, model_input: pd.DataFrame, outputs: np.ndarray) -> Prior:
    """The prior of a task's adapters from its model input and the population's answers.

    The statistics come from the validation users (the population model did not train on
    them, so their residuals are honest), and so does the strength
    (:func:`choose_strength`); a classification's base rates are the shares of the training
    labels (the prior the model learned).

    Args:
        model_input: the task's model input (``split``, ``user_id``, targets).
        outputs: the population's served answers for every row of ``model_input``.
    """
    targets = model_input[list(spec.targets)].to_numpy(dtype=float)
    targets = targets if spec.kind == "regression" else targets[:, 0]
    held_out = (model_input["split"] == "validation").to_numpy()
    base_rates = None
    if spec.kind == "classification":
        train = targets[(model_input["split"] == "train").to_numpy()].astype(int)
        base_rates = np.bincount(train, minlength=len(spec.outputs)) / max(len(train), 1)
    users = model_input.loc[held_out, "user_id"].astype(str).to_numpy()
    statistics = job_statistics(spec, targets[held_out], outputs[held_out])
    prior = fit_prior(spec, statistics, users, base_rates)
    return choose_strength(spec, prior, targets[held_out], outputs[held_out], users)


def user_numbers(
    spec: TaskSpec, prior: Prior, model_input: pd.DataFrame, outputs: np.ndarray
) -> dict[str, tuple[float, ...]]:
    """Every user's adapter from all their labelled jobs (what production serves), rounded to
    6 decimals; users whose adapter is zero are left out."""
    targets = model_input[list(spec.targets)].to_numpy(dtype=float)
    targets = targets if spec.kind == "regression" else targets[:, 0]
    users = model_input["user_id"].astype(str).to_numpy()
    statistics = pd.DataFrame(job_statistics(spec, targets, outputs)).groupby(users)
    numbers = prior.numbers(statistics.sum().to_numpy(), statistics.size().to_numpy())
    return {
        str(user): tuple(np.round(row, 6).tolist())
        for user, row in zip(statistics.sum().index, numbers, strict=True)
        if np.isfinite(row).all() and np.any(np.round(row, 6) != 0)
    }
