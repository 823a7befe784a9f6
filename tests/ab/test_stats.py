"""Every fixed-horizon number, cross-checked against statsmodels (or a direct formula) on the raw
values (to 1e-6), and known answers of the ratio, quantile, power and SRM building blocks."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import special
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind
from sums import histograms, quantile_sums, ratio_sums

from mixai_ml.ab.cuped import cuped
from mixai_ml.ab.effects import compare
from mixai_ml.ab.multiplicity import adjust_p_values
from mixai_ml.ab.power import power_analysis
from mixai_ml.ab.quantile import Histograms, bin_bounds, bin_index, estimate_quantiles
from mixai_ml.ab.ratio import linearise
from mixai_ml.ab.srm import sequential_srm_p_values, srm_p_value
from mixai_ml.ab.stats import (
    ArmSums,
    mean_and_variance,
    noninferiority_p_value,
    relative_lift,
    two_proportion_ztest,
    welch_ttest,
)

TOL = 1e-6


def sums(y: np.ndarray, x: np.ndarray | None = None) -> ArmSums:
    """Sufficient statistics of raw per-user values (``x`` NaN = no covariate)."""
    if x is None:
        return ArmSums(len(y), y.sum(), (y**2).sum())
    has = ~np.isnan(x)
    return ArmSums(
        len(y),
        y.sum(),
        (y**2).sum(),
        has.sum(),
        x[has].sum(),
        (x[has] ** 2).sum(),
        (x[has] * y[has]).sum(),
        y[has].sum(),
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20260301)


def test_moments_from_sums_match_numpy(rng: np.random.Generator) -> None:
    y = rng.lognormal(3.0, 0.7, 997)
    mean, var = mean_and_variance(len(y), y.sum(), (y**2).sum())
    assert mean == pytest.approx(y.mean(), rel=1e-12)
    assert var == pytest.approx(y.var(ddof=1), rel=1e-9)


def test_welch_matches_statsmodels(rng: np.random.Generator) -> None:
    control = rng.lognormal(4.0, 0.5, 800)
    variant = rng.lognormal(4.05, 0.8, 650)
    (m_c, v_c), (m_t, v_t) = (
        mean_and_variance(len(a), a.sum(), (a**2).sum()) for a in (control, variant)
    )
    result = welch_ttest(m_c, v_c, len(control), m_t, v_t, len(variant), alpha=0.1)

    t, p, df = ttest_ind(variant, control, usevar="unequal")
    low, high = CompareMeans(DescrStatsW(variant), DescrStatsW(control)).tconfint_diff(
        alpha=0.1, usevar="unequal"
    )
    assert result.statistic == pytest.approx(t, abs=TOL)
    assert result.p_value == pytest.approx(p, abs=TOL)
    assert result.df == pytest.approx(df, abs=TOL)
    assert result.ci_low == pytest.approx(low, abs=TOL)
    assert result.ci_high == pytest.approx(high, abs=TOL)


def test_two_proportion_z_matches_statsmodels() -> None:
    count, nobs = np.array([420, 377]), np.array([1300, 1310])
    result = two_proportion_ztest(count[1] / nobs[1], nobs[1], count[0] / nobs[0], nobs[0])

    z, p = proportions_ztest(count, nobs)  # pooled variance under H0
    low, high = confint_proportions_2indep(
        count[0], nobs[0], count[1], nobs[1], method="wald", compare="diff", alpha=0.05
    )
    assert result.statistic == pytest.approx(z, abs=TOL)
    assert result.p_value == pytest.approx(p, abs=TOL)
    assert result.ci_low == pytest.approx(low, abs=TOL)
    assert result.ci_high == pytest.approx(high, abs=TOL)


def test_cuped_estimate_is_the_ancova_coefficient_and_its_test_welch_on_adjusted_values(
    rng: np.random.Generator,
) -> None:
    n_c, n_t = 700, 760
    x = rng.normal(100.0, 20.0, n_c + n_t)
    treated = np.r_[np.zeros(n_c), np.ones(n_t)]
    y = 0.8 * x + rng.normal(0.0, 10.0, n_c + n_t) + 2.5 * treated
    x_observed = x.copy()
    x_observed[rng.random(len(x)) < 0.15] = np.nan  # some users have no pre-period value
    c, t = treated == 0, treated == 1

    adjusted = cuped(sums(y[c], x_observed[c]), sums(y[t], x_observed[t]))
    result = compare(
        sums(y[c], x_observed[c]),
        sums(y[t], x_observed[t]),
        test="welch",
        use_cuped=True,
        alpha=0.05,
        tuning_n=1000,
        min_n=100,
    )

    # OLS y ~ 1 + treatment + x with the missing x imputed by the pooled mean
    x_imputed = np.where(np.isnan(x_observed), np.nanmean(x_observed), x_observed)
    ols = sm.OLS(y, sm.add_constant(np.column_stack([treated, x_imputed]))).fit()
    assert result["abs_effect"] == pytest.approx(ols.params[1], abs=TOL)
    assert adjusted.theta == pytest.approx(ols.params[2], abs=TOL)

    # the reported test is Welch's t on the adjusted values y - θ(x - x̄)
    values = y - ols.params[2] * (x_imputed - x_imputed.mean())
    t_stat, p, _ = ttest_ind(values[t], values[c], usevar="unequal")
    low, high = CompareMeans(DescrStatsW(values[t]), DescrStatsW(values[c])).tconfint_diff(
        alpha=0.05, usevar="unequal"
    )
    assert result["p_value"] == pytest.approx(p, abs=TOL)
    assert result["abs_ci_low"] == pytest.approx(low, abs=TOL)
    assert result["abs_ci_high"] == pytest.approx(high, abs=TOL)
    assert t_stat > 0
    # the variance reduction is about the squared correlation of x and y (0.8·20 vs 10: ρ² = 0.72)
    assert adjusted.variance_reduction == pytest.approx(0.72 * 0.85, abs=0.06)


def test_relative_lift_delta_method_formula() -> None:
    lift, se, low, high = relative_lift(10.0, 0.04, 11.0, 0.09, alpha=0.05)
    expected_se = np.sqrt(0.09 / 100 + 121 * 0.04 / 10**4)
    assert lift == pytest.approx(0.1)
    assert se == pytest.approx(expected_se)
    assert (low, high) == pytest.approx(
        (0.1 - 1.959964 * expected_se, 0.1 + 1.959964 * expected_se)
    )
    assert np.isnan(relative_lift(0.0, 0.1, 1.0, 0.1)[0])


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_noninferiority_matches_statsmodels_one_sided_welch(
    rng: np.random.Generator, higher_is_better: bool
) -> None:
    control = rng.normal(50.0, 8.0, 900)
    variant = rng.normal(50.4, 9.0, 950)
    margin = 1.0
    (m_c, v_c), (m_t, v_t) = (
        mean_and_variance(len(a), a.sum(), (a**2).sum()) for a in (control, variant)
    )
    test = welch_ttest(m_c, v_c, len(control), m_t, v_t, len(variant))

    p = noninferiority_p_value(test.estimate, test.se, margin, higher_is_better, test.df)

    alternative, value = ("larger", -margin) if higher_is_better else ("smaller", margin)
    expected = ttest_ind(variant, control, usevar="unequal", alternative=alternative, value=value)[
        1
    ]
    assert p == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize(("method", "statsmodels_method"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_multiple_testing_of_many_families_matches_statsmodels_family_by_family(
    rng: np.random.Generator, method: str, statsmodels_method: str
) -> None:
    # statsmodels' Holm collects garbage on every call: few families keep this test quick
    families = rng.integers(0, 60, 500).astype(str)  # ~8 comparisons per experiment
    p = rng.random(500) ** 3
    p[rng.random(500) < 0.05] = np.nan  # e.g. no data yet: not in the family

    adjusted = adjust_p_values(p, method, families)  # type: ignore[arg-type]

    assert np.isnan(adjusted[np.isnan(p)]).all()
    for family in np.unique(families):
        rows = (families == family) & np.isfinite(p)
        if rows.any():
            expected = multipletests(p[rows], method=statsmodels_method)[1]
            np.testing.assert_allclose(adjusted[rows], expected, atol=1e-12)


def test_multiple_testing_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="correction"):
        adjust_p_values([0.1], "bonferroni")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="families"):
        adjust_p_values([0.1, 0.2], "holm", ["a"])


def test_holm_known_answer() -> None:
    # sorted 0.01, 0.02, 0.04 → ×3, ×2, ×1 with running max
    np.testing.assert_allclose(adjust_p_values([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])


def test_srm_chi_square_known_answers() -> None:
    # 5100 vs 4900 under 50/50: χ² = (100² + 100²)/5000 = 4, df = 1
    assert srm_p_value({"control": 5100, "treatment": 4900}, {"control": 1, "treatment": 1}) == (
        pytest.approx(sps.chi2.sf(4.0, 1))
    )
    # matching 90/10 weights → no mismatch
    assert (
        srm_p_value({"control": 9000, "treatment": 1000}, {"control": 90, "treatment": 10}) == 1.0
    )
    # three variants, 2:1:1, against scipy's goodness-of-fit test
    counts, weights = (
        {"control": 5020, "fast": 2410, "slow": 2570},
        {"control": 2, "fast": 1, "slow": 1},
    )
    oracle = sps.chisquare([5020, 2410, 2570], [5000, 2500, 2500]).pvalue
    assert srm_p_value(counts, weights) == pytest.approx(oracle, rel=1e-12)
    assert 0.01 < oracle < 0.2  # a value in the informative range, not 0 or 1
    # users in a variant that is not configured
    assert srm_p_value({"control": 10, "rogue": 1}, {"control": 1, "treatment": 1}) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        srm_p_value({"control": 1}, {"control": -1})


def test_proportion_of_rates_uses_the_users_variance_like_statsmodels(
    rng: np.random.Generator,
) -> None:
    # users with several 0/1 rows: their value is a rate, not 0/1
    sessions = rng.integers(1, 5, (2, 900))
    control, variant = (
        rng.binomial(sessions[i], p) / sessions[i] for i, p in enumerate((0.02, 0.03))
    )
    result = compare(
        sums(control),
        sums(variant),
        test="z",
        use_cuped=False,
        alpha=0.05,
        tuning_n=1000,
        min_n=100,
    )

    means = CompareMeans(DescrStatsW(variant), DescrStatsW(control))
    _, p = means.ztest_ind(usevar="unequal")
    low, high = means.zconfint_diff(alpha=0.05, usevar="unequal")
    assert result["p_value"] == pytest.approx(p, abs=TOL)
    assert (result["abs_ci_low"], result["abs_ci_high"]) == pytest.approx((low, high), abs=TOL)
    assert result["abs_effect"] == pytest.approx(variant.mean() - control.mean(), abs=1e-12)


def test_power_is_statsmodels_normal_power_for_a_difference_of_means() -> None:
    sd, n_c, n_t, effect = 4.0, 900, 300, 0.6
    se = sd * np.sqrt(1 / n_c + 1 / n_t)

    result = power_analysis(se=se, n_c=n_c, n_t=n_t, target_effect=effect, ratio=2.0)

    engine = NormalIndPower()
    assert result.power == pytest.approx(
        engine.power(effect_size=effect / sd, nobs1=n_c, alpha=0.05, ratio=n_t / n_c), abs=1e-9
    )
    assert result.mde / sd == pytest.approx(
        engine.solve_power(nobs1=n_c, alpha=0.05, power=0.8, ratio=n_t / n_c), rel=1e-3
    )
    assert result.required_n_per_variant == pytest.approx(
        engine.solve_power(effect_size=effect / sd, alpha=0.05, power=0.8, ratio=2.0), rel=1e-3
    )
    assert np.isnan(power_analysis(se=0.0, n_c=n_c, n_t=n_t, target_effect=effect).power)


def test_ratio_linearisation_is_the_delta_method(rng: np.random.Generator) -> None:
    b = 1.0 + rng.poisson(3.0, (1, 2000)).astype(float)  # jobs per user
    a = rng.binomial(b.astype(int), 0.04).astype(float)  # errors per user
    arm = linearise(ratio_sums(a, b))
    mean, var = mean_and_variance(arm.n, arm.sum_y, arm.sum_y2)

    ratio = a.sum() / b.sum()
    # Deng, Knoblich & Lu (2018), eq. (3): Var(ā/b̄) from the per-user (a, b) moments
    cov = np.cov(a[0], b[0])
    delta = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / (b.mean() ** 2 * 2000)
    assert mean[0] == pytest.approx(ratio, rel=1e-12)
    assert var[0] / 2000 == pytest.approx(delta, rel=1e-9)


def test_ratio_with_one_row_per_user_is_the_mean_test(rng: np.random.Generator) -> None:
    a = rng.lognormal(3.0, 0.5, (2, 800))
    ones = np.ones_like(a)
    arms = [linearise(ratio_sums(a[i : i + 1], ones[i : i + 1])) for i in (0, 1)]
    result = compare(*arms, test="z", use_cuped=False, alpha=0.05, tuning_n=1000, min_n=100)

    means = CompareMeans(DescrStatsW(a[1]), DescrStatsW(a[0]))
    assert result["p_value"][0] == pytest.approx(means.ztest_ind(usevar="unequal")[1], abs=TOL)


def test_ratio_cuped_is_the_ancova_coefficient_on_linearised_values(
    rng: np.random.Generator,
) -> None:
    n = 1500
    skill = rng.normal(0.0, 1.0, (2, n))
    b = 1.0 + rng.poisson(2.0, (2, n)).astype(float)
    a = b * np.exp(3.0 + 0.4 * skill + rng.normal(0.0, 0.2, (2, n)))
    a[1] *= 1.03
    x = np.exp(3.0 + 0.4 * skill + rng.normal(0.0, 0.2, (2, n)))  # pre-period value
    arms = [linearise(ratio_sums(a[i : i + 1], b[i : i + 1], x[i : i + 1])) for i in (0, 1)]
    result = compare(*arms, test="z", use_cuped=True, alpha=0.05, tuning_n=1000, min_n=100)

    # the linearised value of each user, with their arm's ratio
    ratios = a.sum(1, keepdims=True) / b.sum(1, keepdims=True)
    y = ratios + (a - ratios * b) / b.mean(1, keepdims=True)
    design = sm.add_constant(np.column_stack([np.r_[np.zeros(n), np.ones(n)], x.ravel()]))
    ols = sm.OLS(y.ravel(), design).fit()
    assert result["abs_effect"][0] == pytest.approx(ols.params[1], rel=1e-9)
    assert result["variance_reduction"][0] > 0.4


def test_bins_are_ordered_like_the_values_and_hold_them() -> None:
    values = np.array([-50.0, -1.0, -0.2, 0.0, 0.3, 1.0, 1.004, 7.5, 1e6])
    bins = bin_index(values, 0.01)
    low, high = bin_bounds(bins, 0.01)

    assert (np.diff(bins) >= 0).all()
    assert bins[5] == bins[6]  # 1.0 and 1.004: one 1 % bin
    assert ((low <= values) & (values <= high)).all()
    nonzero = values != 0
    assert ((high - low)[nonzero] <= 0.0101 * np.abs(values[nonzero])).all()


def histogram(users: np.ndarray, values: np.ndarray, width: float) -> Histograms:
    """One group's histogram of the rows ``(user, value)``."""
    sizes, _, bins, rows, sq, cross = quantile_sums(
        np.zeros(len(values), dtype=int), users, values, width
    )
    return histograms(sizes, bins, rows, sq, cross)


def test_quantile_with_one_row_per_user_is_the_order_statistic_interval(
    rng: np.random.Generator,
) -> None:
    n = 20_000
    values = rng.lognormal(5.0, 0.6, n)

    result = estimate_quantiles(histogram(np.arange(n), values, 0.002), [n], [n], [0.95], 0.002)

    # Woodruff: the order statistics at ranks n·q ± z·√(n·q(1 − q))
    ordered = np.sort(values)
    half = 1.959964 * np.sqrt(n * 0.95 * 0.05)
    assert result.design_effect[0] == pytest.approx(n / (n - 1), abs=1e-9)  # ddof 1
    assert result.estimate[0] == pytest.approx(np.quantile(values, 0.95), rel=0.002)
    assert result.ci_low[0] == pytest.approx(ordered[int(0.95 * n - half)], rel=0.002)
    assert result.ci_high[0] == pytest.approx(ordered[int(0.95 * n + half)], rel=0.002)


def test_quantile_design_effect_counts_each_user_once(rng: np.random.Generator) -> None:
    # every user has k identical rows: the histogram holds k copies of n independent values
    n, k = 5000, 4
    values = rng.lognormal(5.0, 0.6, n)

    copies = estimate_quantiles(
        histogram(np.repeat(np.arange(n), k), np.repeat(values, k), 0.01),
        [n],
        [n * k**2],
        [0.5],
        0.01,
    )
    single = estimate_quantiles(histogram(np.arange(n), values, 0.01), [n], [n], [0.5], 0.01)

    assert copies.design_effect[0] == pytest.approx(k, rel=0.01)
    assert copies.se[0] == pytest.approx(single.se[0], rel=0.02)  # copies add no information


def _bins_near(full: Histograms, q: float, half: float) -> Histograms:
    """The bins of a one-group histogram whose rows overlap the shares ``q ± half`` (what the
    database sends for a quantile metric)."""
    total = full.total_rows[0]
    keep = (full.cum_rows >= (q - half) * total) & (full.cum_rows - full.rows <= (q + half) * total)
    return Histograms(
        np.array([keep.sum()]), *(column[keep] for column in full[1:6]), full.total_rows
    )


def test_quantile_from_the_bins_near_it_equals_the_whole_histogram_or_says_unknown(
    rng: np.random.Generator,
) -> None:
    n, k = 4000, 3
    users = np.repeat(np.arange(n), k)
    values = np.repeat(rng.lognormal(5.0, 0.5, n), k) * rng.lognormal(0.0, 0.2, n * k)
    full = histogram(users, values, 0.01)
    estimate = partial(estimate_quantiles, users=[n], user_rows_sq=[n * k**2], q=[0.95], width=0.01)

    whole = estimate(full)
    wide = estimate(_bins_near(full, 0.95, 0.02))
    narrow = estimate(_bins_near(full, 0.95, 0.002))

    assert len(_bins_near(full, 0.95, 0.02).bins) < len(full.bins) / 3
    for name in ("estimate", "se", "ci_low", "ci_high"):
        assert getattr(wide, name)[0] == pytest.approx(getattr(whole, name)[0], rel=1e-12)
    # the interval needs shares beyond ±0.002: unknown, not silently narrower
    assert whole.ci_high[0] - whole.ci_low[0] > 0
    assert narrow.estimate[0] == pytest.approx(whole.estimate[0], rel=1e-12)
    assert np.isnan([narrow.se[0], narrow.ci_low[0], narrow.ci_high[0]]).all()


def test_sequential_srm_is_the_dirichlet_multinomial_bayes_factor() -> None:
    counts = np.array([[480, 520], [1010, 990], [1700, 1300]])  # cumulative, three looks
    shares, k = np.array([0.5, 0.5]), 100.0

    p = sequential_srm_p_values(counts, shares, k)

    alpha = k * shares
    log_bf = np.array(
        [
            special.betaln(alpha[0] + c[0], alpha[1] + c[1])
            - special.betaln(*alpha)
            - c.sum() * np.log(0.5)
            for c in counts
        ]
    )
    np.testing.assert_allclose(p, np.minimum(1.0, np.exp(-np.maximum.accumulate(log_bf))))
    assert p[-1] < 0.001 < p[0]  # 1700 vs 1300 is a mismatch; 480 vs 520 is not
    assert (np.diff(p) <= 0).all()  # the running p-value never recovers
    assert sequential_srm_p_values([[5, 1]], [1.0, 0.0])[0] == 0.0  # users where none belong
