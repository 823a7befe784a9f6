"""Error rates of the A/B statistics, by simulation with known truth.

Thousands of experiments are simulated at once (numpy, seeded) and analysed with the production
code path (:func:`mixai_ml.ab.effects.compare` and :func:`compare_quantiles` over arrays of
sufficient statistics). Each empirical rate is compared with its target within ``Z`` Monte-Carlo
standard errors; the seeds are fixed, so the tests are deterministic. Per metric type: the A/A
false-positive rate, the coverage of the CI and the power at a known effect; the heavy-tailed
ones show why capping, the delta method and the clustered quantile interval are needed. Tests
marked ``slow`` repeat them with more experiments.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats
from sums import arm_sums, histograms, quantile_sums, ratio_sums

from mixai_ml.ab.effects import compare, compare_quantiles
from mixai_ml.ab.power import power_analysis
from mixai_ml.ab.quantile import QuantileEstimate, estimate_quantiles
from mixai_ml.ab.ratio import linearise
from mixai_ml.ab.sequential import effective_n
from mixai_ml.ab.srm import sequential_srm_p_values, srm_p_value
from mixai_ml.ab.stats import ArmSums

Z = 3.5
"""Monte-Carlo tolerance in standard errors (two-sided ≈ 5e-4 chance of a spurious failure)."""
ALPHA = 0.05

Draw = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]


def mc_tolerance(rate: float, runs: int) -> float:
    return Z * float(np.sqrt(rate * (1.0 - rate) / runs))


def analyse(
    control: ArmSums, variant: ArmSums, proportion: bool, use_cuped: bool = False
) -> dict[str, np.ndarray]:
    return compare(
        control,
        variant,
        test="proportion" if proportion and not use_cuped else "welch",
        use_cuped=use_cuped,
        alpha=ALPHA,
        tuning_n=1000,
        min_n=100,
    )


def within(rate: float, target: float, runs: int) -> bool:
    return abs(rate - target) < mc_tolerance(target, runs)


def covered(result: dict[str, np.ndarray], truth: float | np.ndarray) -> float:
    return float(np.mean((result["abs_ci_low"] <= truth) & (truth <= result["abs_ci_high"])))


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
        se = np.sqrt((p_c * (1 - p_c) + (p_c + effect) * (0.7 - effect)) / n)
    else:
        sd, effect = 2.0, 0.25
        control = rng.normal(10.0, sd, (runs, n))
        variant = rng.normal(10.0 + effect, sd, (runs, n))
        se = sd * np.sqrt(2.0 / n)
    analytic = float(power_analysis(se=se, n_c=n, n_t=n, target_effect=effect).power)
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


# --- ratio metrics: errors per job, users with very different numbers of jobs -----------------


def _errors_per_job(
    rng: np.random.Generator, runs: int, n: int, lift: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user errors ``a`` and jobs ``b``: half the users are heavy (20 jobs, 2 % errors), half
    light (2 jobs, 5 %), each with their own error propensity (gamma, shape 0.5). True ratio:
    (½·20·0.02 + ½·2·0.05)/(½·20 + ½·2) = 0.25/11, times ``lift``."""
    heavy = rng.random((runs, n)) < 0.5
    jobs = 1 + rng.poisson(np.where(heavy, 19.0, 1.0))
    propensity = np.where(heavy, 0.02, 0.05) * lift * rng.gamma(0.5, 2.0, (runs, n))
    errors = rng.binomial(jobs, np.minimum(propensity, 1.0))
    return errors.astype(float), jobs.astype(float)


def _ratio_analysis(control: tuple[np.ndarray, ...], variant: tuple[np.ndarray, ...]) -> dict:
    return compare(
        linearise(ratio_sums(*control)),
        linearise(ratio_sums(*variant)),
        test="z",
        use_cuped=True,
        alpha=ALPHA,
        tuning_n=1000,
        min_n=100,
    )


@pytest.mark.parametrize("runs", [1500, pytest.param(8000, marks=pytest.mark.slow)])
def test_ratio_metric_false_positives_coverage_and_power(runs: int) -> None:
    rng = np.random.default_rng(11)
    n, lift, truth = 1000, 1.25, 0.25 / 11 * 0.25
    aa = _ratio_analysis(_errors_per_job(rng, runs, n, 1.0), _errors_per_job(rng, runs, n, 1.0))
    control = _errors_per_job(rng, runs, n, 1.0)
    variant = _errors_per_job(rng, runs, n, lift)
    ab = _ratio_analysis(control, variant)
    analytic = power_analysis(se=ab["se"], n_c=n, n_t=n, target_effect=truth).power

    # rows as if independent (a binomial per job): ignores that a user's jobs go together
    jobs_c, jobs_t = control[1].sum(1), variant[1].sum(1)
    rate_c, rate_t = control[0].sum(1) / jobs_c, variant[0].sum(1) / jobs_t
    naive_se = np.sqrt(rate_c * (1 - rate_c) / jobs_c + rate_t * (1 - rate_t) / jobs_t)
    naive_covered = np.mean(np.abs(rate_t - rate_c - truth) <= 1.959964 * naive_se)

    assert within(float(np.mean(aa["p_value"] < ALPHA)), ALPHA, runs)
    assert within(covered(ab, truth), 0.95, runs)
    assert within(float(np.mean(ab["p_value"] < ALPHA)), float(np.mean(analytic)), runs)
    assert naive_covered < 0.90  # per-job rows are not independent


# --- quantile metrics: p95 of every job's latency, several jobs per user -------------------------

_LATENCY = {"median_log": 5.0, "user_sd": 0.35, "row_sd": 0.3}


def _latency_quantile(
    rng: np.random.Generator, runs: int, n: int, lift: float, q: float, per_row: bool = False
) -> QuantileEstimate:
    """The estimated ``q``-quantile of each run's rows; ``per_row``: each row its own user."""
    jobs = 1 + rng.poisson(2.0, (runs, n))
    run = np.repeat(np.arange(runs), jobs.sum(1))
    user = np.repeat(np.arange(runs * n), jobs.ravel())
    effect = rng.normal(0.0, _LATENCY["user_sd"], runs * n)[user]
    log_v = _LATENCY["median_log"] + effect + rng.normal(0.0, _LATENCY["row_sd"], len(user))
    values = np.exp(log_v) * lift
    if per_row:
        user = np.arange(len(user))
    sizes, _, bins, rows, sq, cross = quantile_sums(run, user, values, 0.01)
    users = jobs.sum(1) if per_row else np.full(runs, n)
    squares = jobs.sum(1) if per_row else (jobs**2).sum(1)
    return estimate_quantiles(
        histograms(sizes, bins, rows, sq, cross), users, squares, np.full(runs, q), 0.01
    )


def _true_quantile(lift: float, q: float) -> float:
    sd = np.hypot(_LATENCY["user_sd"], _LATENCY["row_sd"])  # rows: log-normal, users' jobs mixed
    return float(lift * np.exp(_LATENCY["median_log"] + stats.norm.ppf(q) * sd))


def _quantile_analysis(control: QuantileEstimate, variant: QuantileEstimate, n: int) -> dict:
    return compare_quantiles(control, variant, n, n, alpha=ALPHA, tuning_n=1000, min_n=100)


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
@pytest.mark.parametrize("runs", [400, pytest.param(2000, marks=pytest.mark.slow)])
def test_quantile_metric_false_positives_coverage_and_power(runs: int, q: float) -> None:
    rng = np.random.default_rng(12)
    n, lift = 1000, 1.06
    truth = _true_quantile(lift, q) - _true_quantile(1.0, q)
    aa = _quantile_analysis(
        _latency_quantile(rng, runs, n, 1.0, q), _latency_quantile(rng, runs, n, 1.0, q), n
    )
    control = _latency_quantile(rng, runs, n, 1.0, q)
    ab = _quantile_analysis(control, _latency_quantile(rng, runs, n, lift, q), n)
    analytic = power_analysis(se=ab["se"], n_c=n, n_t=n, target_effect=truth).power
    one_arm_covered = np.mean(
        (control.ci_low <= _true_quantile(1.0, q)) & (_true_quantile(1.0, q) <= control.ci_high)
    )
    naive = _latency_quantile(rng, runs, n, 1.0, q, per_row=True)
    naive_covered = np.mean(
        (naive.ci_low <= _true_quantile(1.0, q)) & (_true_quantile(1.0, q) <= naive.ci_high)
    )

    assert within(float(np.mean(aa["p_value"] < ALPHA)), ALPHA, runs)
    assert within(covered(ab, truth), 0.95, runs)
    assert within(float(one_arm_covered), 0.95, runs)
    assert within(float(np.mean(ab["p_value"] < ALPHA)), float(np.mean(analytic)), runs)
    # ~3 correlated jobs per user (fewer of a user's rows share the far tail: smaller at p99)
    assert 1.2 < float(np.median(control.design_effect)) < 3.0
    # the standard error is the spread of the estimate over runs: never smaller, and larger by
    # little (the outer interval is conservative at p99, with ~30 rows above it per arm)
    assert 0.65 < float(np.var(control.estimate) / np.mean(control.se**2)) < 1.15
    assert naive_covered < one_arm_covered - 0.03  # the binomial interval of the rows: too narrow


# --- capping: heavy-tailed per-user values, capped at the pooled pre-period's p99 ---------------

_SPEND = {"mu": 1.0, "sigma": 1.5, "rho": 0.7}


def _spend(rng: np.random.Generator, runs: int, n: int, lift: float) -> tuple[np.ndarray, ...]:
    """Per-user values ``y`` (log-normal, σ = 1.5) and their correlated pre-period values ``x``."""
    z_pre = rng.normal(size=(runs, n))
    z = _SPEND["rho"] * z_pre + np.sqrt(1 - _SPEND["rho"] ** 2) * rng.normal(size=(runs, n))
    y = lift * np.exp(_SPEND["mu"] + _SPEND["sigma"] * z)
    return y, np.exp(_SPEND["mu"] + _SPEND["sigma"] * z_pre)


def _capped_mean(lift: float, cap: np.ndarray) -> np.ndarray:
    """E[min(Y, cap)] of Y = lift·exp(μ + σZ), exactly."""
    mu, sigma = _SPEND["mu"] + np.log(lift), _SPEND["sigma"]
    log_cap = np.log(cap)
    below = np.exp(mu + sigma**2 / 2) * stats.norm.cdf((log_cap - mu - sigma**2) / sigma)
    return below + cap * stats.norm.sf((log_cap - mu) / sigma)


def _capped_analysis(
    control: tuple[np.ndarray, ...], variant: tuple[np.ndarray, ...], use_cuped: bool
) -> tuple[dict, dict, np.ndarray]:
    """Capped and raw analysis; the cap is the pooled pre-period p99 (inverted CDF)."""
    pooled = np.concatenate([control[1], variant[1]], axis=1)
    cap = np.quantile(pooled, 0.99, axis=1, method="inverted_cdf")[:, None]
    (y_c, x_c), (y_t, x_t) = control, variant
    capped = compare(
        arm_sums(np.minimum(y_c, cap), np.minimum(x_c, cap)),
        arm_sums(np.minimum(y_t, cap), np.minimum(x_t, cap)),
        test="welch",
        use_cuped=use_cuped,
        alpha=ALPHA,
        tuning_n=1000,
        min_n=100,
    )
    raw = analyse(arm_sums(y_c), arm_sums(y_t), proportion=False)
    return capped, raw, cap[:, 0]


@pytest.mark.parametrize("runs", [1500, pytest.param(8000, marks=pytest.mark.slow)])
@pytest.mark.parametrize("use_cuped", [False, True])
def test_capping_keeps_error_rates_and_raises_power_on_heavy_tails(
    runs: int, use_cuped: bool
) -> None:
    rng = np.random.default_rng(13)
    n, lift = 1000, 1.2
    aa, _, _ = _capped_analysis(_spend(rng, runs, n, 1.0), _spend(rng, runs, n, 1.0), use_cuped)
    capped, raw, cap = _capped_analysis(
        _spend(rng, runs, n, 1.0), _spend(rng, runs, n, lift), use_cuped
    )
    truth = _capped_mean(lift, cap) - _capped_mean(1.0, cap)  # the capped estimand, per run
    power_capped = float(np.mean(capped["p_value"] < ALPHA))
    power_raw = float(np.mean(raw["p_value"] < ALPHA))

    assert within(float(np.mean(aa["p_value"] < ALPHA)), ALPHA, runs)
    assert within(covered(capped, truth), 0.95, runs)
    assert power_capped > power_raw + 0.1  # the tail's noise hid the effect
    if use_cuped:
        assert float(np.mean(capped["variance_reduction"])) > 0.2


# --- the sequential SRM check under daily looks --------------------------------------------------


def _daily_counts(
    rng: np.random.Generator, runs: int, days: int, per_day: int, kept: float = 1.0
) -> np.ndarray:
    """Cumulative users per variant after each day, 50/50, with ``kept`` of treatment logged."""
    treatment = 0.5 * kept / (0.5 + 0.5 * kept)
    daily = rng.multinomial(per_day, [1 - treatment, treatment], size=(runs, days))
    return np.cumsum(daily, axis=1)


@pytest.mark.parametrize(
    ("level", "runs"), [(0.05, 4000), pytest.param(0.001, 40_000, marks=pytest.mark.slow)]
)
def test_sequential_srm_false_alarms_under_daily_looks_stay_at_the_level(
    level: float, runs: int
) -> None:
    rng = np.random.default_rng(14)
    counts = _daily_counts(rng, runs, days=30, per_day=2000)

    sequential = sequential_srm_p_values(counts, [1.0, 1.0], 10_000.0)
    expected = counts.sum(-1, keepdims=True) / 2.0
    chi_square = stats.chi2.sf(((counts - expected) ** 2 / expected).sum(-1), df=1)

    assert float(np.mean(sequential[:, -1] < level)) <= level + mc_tolerance(level, runs)
    if level == 0.05:  # the daily chi-square alarms far more often than its level
        assert float(np.mean((chi_square < level).any(axis=1))) > 3 * level


def test_sequential_srm_detects_a_two_percent_loss() -> None:
    rng = np.random.default_rng(15)
    counts = _daily_counts(rng, 500, days=30, per_day=10_000, kept=0.98)

    p = sequential_srm_p_values(counts, [1.0, 1.0], 10_000.0)

    assert float(np.mean(p[:, -1] < 0.001)) > 0.8
    assert float(np.mean(effective_n(1.0, 1.0))) == 1.0
