"""Every fixed-horizon number, cross-checked against statsmodels on the raw values (to 1e-6)."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind

from mixai_ml.ab.analysis import compare
from mixai_ml.ab.cuped import cuped
from mixai_ml.ab.srm import srm_p_value
from mixai_ml.ab.stats import (
    ArmSums,
    adjust_p_values,
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
        proportion=False,
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
def test_multiple_testing_matches_statsmodels(method: str, statsmodels_method: str) -> None:
    p = np.array([0.001, 0.04, 0.03, np.nan, 0.2])
    adjusted = adjust_p_values(p, method)  # type: ignore[arg-type]
    finite = ~np.isnan(p)
    np.testing.assert_allclose(
        adjusted[finite], multipletests(p[finite], method=statsmodels_method)[1], atol=1e-12
    )
    assert np.isnan(adjusted[3])


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
        proportion=True,
        use_cuped=False,
        alpha=0.05,
        tuning_n=1000,
        min_n=100,
        binary=False,
    )

    means = CompareMeans(DescrStatsW(variant), DescrStatsW(control))
    _, p = means.ztest_ind(usevar="unequal")
    low, high = means.zconfint_diff(alpha=0.05, usevar="unequal")
    assert result["p_value"] == pytest.approx(p, abs=TOL)
    assert (result["abs_ci_low"], result["abs_ci_high"]) == pytest.approx((low, high), abs=TOL)
    assert result["abs_effect"] == pytest.approx(variant.mean() - control.mean(), abs=1e-12)
