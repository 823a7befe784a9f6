"""Per-user adapters: the empirical-Bayes prior on simulated users with known variance
components, the production-like history protocol, and the store fitted at export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixai_inference.adapters import adjust
from mixai_inference.tasks import MASTER_PARAM_RANGES, MASTER_REG, PRESET_CLS, task_spec
from mixai_ml.personalization.adapters import (
    fit_prior,
    job_statistics,
    personalised_outputs,
    task_prior,
    user_numbers,
)
from mixai_ml.personalization.protocol import (
    bucket_labels,
    chronological,
    evaluate_by_history,
    history_numbers,
)

MASTER = task_spec(MASTER_REG)
PRESET = task_spec(PRESET_CLS)
SPANS = np.array([high - low for low, high in MASTER_PARAM_RANGES.values()])
TASTE_SD = 0.04 * SPANS  # between users
NOISE_SD = 0.03 * SPANS  # within a user


def users_with_taste(
    n_users: int, seed: int, jobs: tuple[int, int] = (1, 9)
) -> tuple[pd.DataFrame, np.ndarray]:
    """master_reg jobs of users with a taste: ``label = mid + taste + noise``; the population
    answers ``mid``. Returns the jobs (user, order, labels, population answers) and tastes."""
    rng = np.random.default_rng(seed)
    taste = rng.normal(0.0, TASTE_SD, (n_users, len(SPANS)))
    counts = rng.integers(jobs[0], jobs[1] + 1, n_users)
    owner = np.repeat(np.arange(n_users), counts)
    mid = np.array([(low + high) / 2 for low, high in MASTER_PARAM_RANGES.values()])
    labels = mid + taste[owner] + rng.normal(0.0, NOISE_SD, (len(owner), len(SPANS)))
    frame = pd.DataFrame(labels, columns=list(MASTER.outputs))
    frame.insert(0, "user_id", [f"U{k:04d}" for k in owner])
    frame.insert(0, "job_id", [f"J{k:06d}" for k in range(len(owner))])
    for k, name in enumerate(MASTER.outputs):
        frame[f"population_{name}"] = mid[k]
    return frame, taste


def residuals_of(frame: pd.DataFrame) -> np.ndarray:
    """Label minus population answer of each job of :func:`users_with_taste`."""
    return job_statistics(
        MASTER,
        frame[list(MASTER.outputs)].to_numpy(),
        frame[[f"population_{n}" for n in MASTER.outputs]].to_numpy(),
    )


def test_the_prior_recovers_the_variance_components() -> None:
    frame, _ = users_with_taste(600, seed=1)
    residuals = residuals_of(frame)
    prior = fit_prior(MASTER, residuals, frame["user_id"].to_numpy(), None)
    within = np.array(prior.details["within_user_variance"])
    between = np.array(prior.details["between_user_variance"])
    np.testing.assert_allclose(within, NOISE_SD**2, rtol=0.1)
    np.testing.assert_allclose(between, TASTE_SD**2, rtol=0.2)
    np.testing.assert_allclose(prior.shrinkage, (NOISE_SD / TASTE_SD) ** 2, rtol=0.25)


def test_shrunk_offsets_predict_a_users_next_job_best() -> None:
    """From a few earlier jobs, the posterior mean beats both the population (zero) and the
    user's raw mean residual (no shrinkage): the reason for empirical Bayes."""
    train, _ = users_with_taste(600, seed=2)
    statistics = residuals_of(train)
    prior = fit_prior(MASTER, statistics, train["user_id"].to_numpy(), None)
    test, _taste = users_with_taste(2000, seed=3, jobs=(2, 3))
    residuals = residuals_of(test)
    users = test["user_id"].to_numpy()
    last = ~pd.Series(users).duplicated(keep="last").to_numpy()  # each user's newest job
    history = pd.DataFrame(residuals[~last]).groupby(users[~last])
    sums, counts = history.sum(), history.size()
    target = residuals[last] / SPANS
    shrunk = prior.numbers(sums.to_numpy(), counts.to_numpy()) / SPANS
    raw = (sums.to_numpy() / counts.to_numpy()[:, None]) / SPANS
    error = {
        name: np.abs(target - guess).mean()
        for name, guess in (("population", 0.0), ("raw mean", raw), ("shrunk", shrunk))
    }
    assert error["shrunk"] < error["raw mean"]
    assert error["shrunk"] < error["population"] * 0.95


def test_the_class_prior_recovers_the_concentration() -> None:
    rng = np.random.default_rng(4)
    base = np.array([0.3, 0.25, 0.15, 0.1, 0.1, 0.1])
    alpha = 5.0
    shares = rng.dirichlet(alpha * base, 800)
    labels = np.concatenate([rng.choice(6, 8, p=share) for share in shares])
    users = np.repeat(np.arange(800), 8)
    statistics = job_statistics(PRESET, labels, np.tile(base, (len(labels), 1)))
    assert statistics.shape == (len(labels), 12)
    prior = fit_prior(PRESET, statistics, users, base)
    assert prior.shrinkage[0] == pytest.approx(alpha, rel=0.35)
    # a user who chose class 1 in all 8 jobs where the model expected the base rates: their
    # prior of class 1 is far above its share
    numbers = prior.numbers(np.array([[0, 8, 0, 0, 0, 0, *(8 * base)]]), np.array([8]))[0]
    assert numbers[1] > np.log(2)
    assert (numbers[[0, 2, 3, 4, 5]] < 0).all()
    assert np.zeros(6) == pytest.approx(prior.numbers(np.zeros((1, 12)), np.array([0]))[0])


def test_a_class_the_model_already_expected_is_not_counted_twice() -> None:
    """A user who always sings the style of class 1, and whose model answers say so, chose
    what the features explain: no adapter, however many jobs."""
    base = np.array([0.3, 0.25, 0.15, 0.1, 0.1, 0.1])
    prior = fit_prior(
        PRESET,
        job_statistics(PRESET, np.tile(np.arange(6), 40), np.tile(base, (240, 1))),
        np.repeat(np.arange(40), 6),
        base,
    )
    expected = np.array([0.05, 0.75, 0.05, 0.05, 0.05, 0.05])
    labels = np.array([1] * 15 + [0, 2, 3, 4, 5])
    sums = job_statistics(PRESET, labels, np.tile(expected, (20, 1))).sum(axis=0, keepdims=True)
    assert prior.numbers(sums, np.array([20]))[0] == pytest.approx(np.zeros(6), abs=1e-12)


def test_too_few_returning_users_means_no_adapters() -> None:
    prior = fit_prior(MASTER, np.ones((3, 8)), np.array(["a", "b", "c"]), None)
    assert (prior.numbers(np.ones((2, 8)), np.array([1, 5])) == 0).all()


def test_the_history_adapter_of_each_job_uses_only_the_jobs_before_it() -> None:
    frame, _ = users_with_taste(30, seed=5)
    frame = frame.sample(frac=1.0, random_state=0)  # any order in
    created = pd.Series(
        pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(len(frame)), "h"),
        index=frame["job_id"].sample(frac=1.0, random_state=1).to_numpy(),
    )
    ordered = chronological(frame, created)
    assert (ordered.groupby("user_id")["created_at"].diff().dropna() > pd.Timedelta(0)).all()
    targets = ordered[list(MASTER.outputs)].to_numpy()
    population = ordered[[f"population_{n}" for n in MASTER.outputs]].to_numpy()
    users = ordered["user_id"].to_numpy()
    prior = fit_prior(MASTER, job_statistics(MASTER, targets, population), users, None)
    numbers = history_numbers(MASTER, prior, targets, population, users)
    for row in range(len(ordered)):
        earlier = (users == users[row]) & (
            ordered["prior_jobs"].to_numpy() < ordered["prior_jobs"].iloc[row]
        )
        sums = (targets[earlier] - population[earlier]).sum(axis=0, keepdims=True)
        expected = prior.numbers(sums, np.array([earlier.sum()]))[0]
        np.testing.assert_allclose(numbers[row], expected, atol=1e-12)


def test_prior_job_counts_fall_into_the_contract_buckets() -> None:
    counts = np.array([0, 1, 2, 3, 4, 5, 9, 10, 25])
    assert bucket_labels(counts, [0, 1, 2, 5, 10]).tolist() == [
        "0", "1", "2", "2", "2", "5", "5", "10+", "10+"
    ]  # fmt: skip


def test_returning_users_gain_with_a_ci_that_excludes_zero() -> None:
    frame, _ = users_with_taste(120, seed=6, jobs=(1, 14))
    created = pd.Series(
        pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(len(frame)), "h"),
        index=frame["job_id"].to_numpy(),
    )
    ordered = chronological(frame, created)
    train, _ = users_with_taste(300, seed=7)
    residuals = residuals_of(train)
    prior = fit_prior(MASTER, residuals, train["user_id"].to_numpy(), None)
    buckets, summary = evaluate_by_history(
        MASTER,
        ordered,
        prior,
        {"buckets": [0, 1, 2, 5, 10], "returning_from": 5},
        {"n_resamples": 200, "seed": 0},
    )
    assert list(buckets) == ["0", "1", "2", "5", "10+"]
    assert buckets["0"]["diff"] == pytest.approx(0.0)  # no history, no adapter
    returning = summary["returning"]
    assert returning["diff"] < 0
    assert returning["diff_ci_high"] < 0
    assert buckets["10+"]["model"] < buckets["1"]["model"]  # more history, closer to the taste
    assert sum(block["n"] for block in buckets.values()) == len(ordered)


def test_served_adjustment_equals_the_predictors() -> None:
    rng = np.random.default_rng(8)
    outputs = np.array([[(low + high) / 2 for low, high in MASTER_PARAM_RANGES.values()]] * 5)
    numbers = rng.normal(0.0, 10.0, outputs.shape)  # large: clipping matters
    adjusted = personalised_outputs(MASTER, outputs, numbers)
    for row in range(5):
        expected = MASTER.finish(adjust(MASTER, outputs[row].tolist(), numbers[row].tolist()))
        assert adjusted[row].tolist() == expected


def test_the_store_holds_every_allowed_users_adapter() -> None:
    frame, taste = users_with_taste(200, seed=9, jobs=(3, 12))
    frame["split"] = np.where(frame["user_id"].str[-1].isin(["0", "1", "2"]), "validation", "train")
    outputs = frame[[f"population_{n}" for n in MASTER.outputs]].to_numpy()
    prior = task_prior(MASTER, frame, outputs)
    store = user_numbers(MASTER, prior, frame, outputs)
    assert set(store) == set(frame["user_id"])
    estimated = np.array([store[f"U{k:04d}"] for k in range(200)])
    correlation = [np.corrcoef(estimated[:, k], taste[:, k])[0, 1] for k in range(len(SPANS))]
    assert min(correlation) > 0.8
