"""Error rates of the A/B statistics, by simulation with known truth.

Thousands of experiments are simulated at once (numpy, seeded) and analysed with the production
code path (:func:`mixai_ml.ab.analysis.compare` over arrays of sufficient statistics). Each
empirical rate is compared with its target within ``Z`` Monte-Carlo standard errors; the seeds
are fixed, so the tests are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from mixai_ml.ab.analysis import compare
from mixai_ml.ab.power import power_analysis
from mixai_ml.ab.srm import srm_p_value
from mixai_ml.ab.stats import ArmSums

Z = 3.5
"""Monte-Carlo tolerance in standard errors (two-sided ≈ 5e-4 chance of a spurious failure)."""
ALPHA = 0.05

Draw = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]


def mc_tolerance(rate: float, runs: int) -> float:
    return Z * float(np.sqrt(rate * (1.0 - rate) / runs))


def arm_sums(y: np.ndarray, x: np.ndarray | None = None) -> ArmSums:
    """Sufficient statistics of each row of ``y`` (one simulated experiment per row)."""
    base = (np.full(len(y), float(y.shape[1])), y.sum(axis=1), (y**2).sum(axis=1))
    if x is None:
        return ArmSums(*base)
    return ArmSums(
        *base,
        np.full(len(y), float(y.shape[1])),
        x.sum(axis=1),
        (x**2).sum(axis=1),
        (x * y).sum(axis=1),
        y.sum(axis=1),
    )


def analyse(
    control: ArmSums, variant: ArmSums, proportion: bool, use_cuped: bool = False
) -> dict[str, np.ndarray]:
    return compare(
        control,
        variant,
        proportion=proportion,
        use_cuped=use_cuped,
        alpha=ALPHA,
        tuning_n=1000,
        min_n=100,
    )


def lognormal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.lognormal(3.0, 0.8, shape)  # skewed, like latencies


def bernoulli(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return (rng.random(shape) < 0.3).astype(float)


@pytest.mark.parametrize(("draw", "proportion"), [(lognormal, False), (bernoulli, True)])
def test_aa_false_positive_rate_is_alpha(draw: Draw, proportion: bool) -> None:
    rng = np.random.default_rng(1)
    runs, n = 4000, 500
    result = analyse(arm_sums(draw(rng, (runs, n))), arm_sums(draw(rng, (runs, n))), proportion)

    false_positive_rate = float(np.mean(result["p_value"] < ALPHA))

    assert abs(false_positive_rate - ALPHA) < mc_tolerance(ALPHA, runs)


@pytest.mark.parametrize("proportion", [False, True])
def test_confidence_intervals_cover_the_true_effect(proportion: bool) -> None:
    rng = np.random.default_rng(2)
    runs, n = 4000, 600
    if proportion:
        p_c, p_t = 0.30, 0.34
        control = (rng.random((runs, n)) < p_c).astype(float)
        variant = (rng.random((runs, n)) < p_t).astype(float)
        true_abs, true_rel = p_t - p_c, p_t / p_c - 1
    else:
        # lognormal means: exp(μ + σ²/2)
        control, variant = rng.lognormal(3.0, 0.8, (runs, n)), rng.lognormal(3.1, 0.8, (runs, n))
        mean_c, mean_t = np.exp(3.0 + 0.32), np.exp(3.1 + 0.32)
        true_abs, true_rel = mean_t - mean_c, mean_t / mean_c - 1
    result = analyse(arm_sums(control), arm_sums(variant), proportion)

    abs_coverage = np.mean((result["abs_ci_low"] <= true_abs) & (true_abs <= result["abs_ci_high"]))
    rel_coverage = np.mean((result["rel_ci_low"] <= true_rel) & (true_rel <= result["rel_ci_high"]))

    assert abs(abs_coverage - 0.95) < mc_tolerance(0.95, runs)
    assert abs(rel_coverage - 0.95) < mc_tolerance(0.95, runs)


@pytest.mark.parametrize("proportion", [False, True])
def test_power_at_a_known_effect_matches_the_analytic_power(proportion: bool) -> None:
    rng = np.random.default_rng(3)
    runs, n = 4000, 800
    if proportion:
        p_c, effect = 0.30, 0.055
        control = (rng.random((runs, n)) < p_c).astype(float)
        variant = (rng.random((runs, n)) < p_c + effect).astype(float)
        mean_c, sd = p_c, np.sqrt(p_c * (1 - p_c))
    else:
        mean_c, sd, effect = 10.0, 2.0, 0.25
        control = rng.normal(mean_c, sd, (runs, n))
        variant = rng.normal(mean_c + effect, sd, (runs, n))
    analytic = power_analysis(
        proportion=proportion, mean_c=mean_c, sd=sd, n_c=n, n_t=n, target_effect=effect
    ).power
    result = analyse(arm_sums(control), arm_sums(variant), proportion)

    empirical = float(np.mean(result["p_value"] < ALPHA))

    assert 0.6 < analytic < 0.9
    assert abs(empirical - analytic) < mc_tolerance(analytic, runs)


def test_cuped_reduces_variance_by_rho_squared_and_keeps_coverage() -> None:
    rng = np.random.default_rng(4)
    runs, n, rho, effect = 3000, 400, 0.7, 0.2
    x_c, x_t = rng.normal(0.0, 1.0, (runs, n)), rng.normal(0.0, 1.0, (runs, n))

    def outcome(x: np.ndarray) -> np.ndarray:
        return 5.0 + rho * x + np.sqrt(1 - rho**2) * rng.normal(0.0, 1.0, x.shape)

    y_c, y_t = outcome(x_c), outcome(x_t) + effect
    raw = analyse(arm_sums(y_c, x_c), arm_sums(y_t, x_t), proportion=False)
    adjusted = analyse(arm_sums(y_c, x_c), arm_sums(y_t, x_t), proportion=False, use_cuped=True)

    empirical_reduction = 1.0 - adjusted["abs_effect"].var() / raw["abs_effect"].var()
    coverage = np.mean((adjusted["abs_ci_low"] <= effect) & (effect <= adjusted["abs_ci_high"]))

    assert empirical_reduction == pytest.approx(rho**2, abs=0.04)
    assert float(np.mean(adjusted["variance_reduction"])) == pytest.approx(rho**2, abs=0.01)
    assert abs(adjusted["abs_effect"].mean() - effect) < 0.005  # unbiased
    assert abs(coverage - 0.95) < mc_tolerance(0.95, runs)


def test_srm_alarms_at_its_level_and_detects_a_two_percent_loss() -> None:
    rng = np.random.default_rng(5)
    weights = {"control": 1.0, "treatment": 1.0}
    runs = 10_000
    treated = rng.binomial(10_000, 0.5, runs)
    false_alarms = np.mean(
        [srm_p_value({"control": 10_000 - t, "treatment": t}, weights) < 0.001 for t in treated]
    )
    uneven = {"control": 90.0, "treatment": 10.0}
    uneven_alarms = np.mean(
        [
            srm_p_value({"control": 10_000 - t, "treatment": t}, uneven) < 0.001
            for t in rng.binomial(10_000, 0.1, 1000)
        ]
    )
    # 2 % of the treatment users lost (e.g. a crash before logging) in 400 000 assigned users
    assigned = rng.binomial(400_000, 0.5, 300)
    logged = rng.binomial(assigned, 0.98)
    detected = np.mean(
        [
            srm_p_value({"control": 400_000 - a, "treatment": t}, weights) < 0.001
            for a, t in zip(assigned, logged, strict=True)
        ]
    )

    assert false_alarms < 0.001 + mc_tolerance(0.001, runs)
    assert uneven_alarms < 0.001 + mc_tolerance(0.001, 1000)
    assert detected > 0.95


def _peeking_paths(
    rng: np.random.Generator, draw: Draw, runs: int, n: int, step: int, effect: float = 0.0
) -> tuple[ArmSums, ArmSums]:
    """Cumulative sums after every ``step`` users per arm: arrays of shape (runs, looks)."""
    looks = np.arange(step, n + 1, step)

    def cumulative(y: np.ndarray) -> ArmSums:
        return ArmSums(
            np.broadcast_to(looks.astype(float), (runs, len(looks))),
            np.cumsum(y, axis=1)[:, looks - 1],
            np.cumsum(y**2, axis=1)[:, looks - 1],
        )

    return cumulative(draw(rng, (runs, n))), cumulative(draw(rng, (runs, n)) + effect)


@pytest.mark.parametrize(("draw", "proportion"), [(lognormal, False), (bernoulli, True)])
def test_sequential_false_positive_rate_under_continuous_peeking(
    draw: Draw, proportion: bool
) -> None:
    rng = np.random.default_rng(6)
    runs = 1000
    control, variant = _peeking_paths(rng, draw, runs, n=4000, step=20)
    result = analyse(control, variant, proportion)

    sequential_rate = float(np.mean((result["seq_p_value"] < ALPHA).any(axis=1)))
    naive_rate = float(np.mean((result["p_value"] < ALPHA).any(axis=1)))
    # the confidence sequence and the always-valid p-value agree at every look
    excludes_zero = (result["seq_ci_low"] > 0) | (result["seq_ci_high"] < 0)
    np.testing.assert_array_equal(excludes_zero, result["seq_p_value"] < ALPHA)

    assert sequential_rate <= ALPHA + mc_tolerance(ALPHA, runs)
    assert naive_rate > 0.15  # peeking at the fixed-horizon p-value 200 times inflates errors


def test_confidence_sequence_covers_the_effect_at_every_look() -> None:
    rng = np.random.default_rng(7)
    runs, effect = 1000, 3.0  # lognormal(3, 0.8): mean 27.7, sd 25 → z ≈ 5 at 4000 per arm
    control, variant = _peeking_paths(rng, lognormal, runs, n=4000, step=20, effect=effect)
    result = analyse(control, variant, proportion=False)

    ever_missed = ((result["seq_ci_low"] > effect) | (result["seq_ci_high"] < effect)).any(axis=1)

    assert float(np.mean(ever_missed)) <= ALPHA + mc_tolerance(ALPHA, runs)
    assert float(np.mean(result["seq_p_value"][:, -1] < ALPHA)) > 0.5  # and it does detect it
