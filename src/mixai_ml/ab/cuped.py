"""CUPED: variance reduction with a pre-exposure covariate, from sufficient statistics.

The adjusted value of a user is ``y - θ·(x - x̄)``, where ``x`` is their pre-exposure value of
the metric (``<metric>__pre``) and ``x̄`` the mean of ``x`` over both arms. Because ``x`` is
measured before exposure it is independent of the assignment, so the adjusted difference of
means is unbiased for the treatment effect and the usual two-sample CIs on adjusted values stay
valid; its variance shrinks by the factor ``1 - ρ²(x, y)``.

``θ`` is the *pooled within-arm* regression slope ``Σ_g Σ_i (x-x̄_g)(y-ȳ_g) / Σ_g Σ_i (x-x̄_g)²``,
so the adjusted difference equals the coefficient of the treatment indicator in the OLS
regression ``y ~ 1 + treatment + x`` (ANCOVA; Frisch-Waugh-Lovell). Users without ``x`` get
``x = x̄`` (mean imputation over users who have it): their adjustment is zero and they still
count.

References:
    Deng, A., Xu, Y., Kohavi, R. & Walker, T. (2013). Improving the sensitivity of online
    controlled experiments by utilizing pre-experiment data. WSDM '13.
    Lin, W. (2013). Agnostic notes on regression adjustments to experimental data. Ann. Appl.
    Stat. 7(1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mixai_ml.ab.stats import ArmSums, FloatArray, mean_and_variance


class CupedArms(NamedTuple):
    """CUPED-adjusted per-user means and variances of the two arms (``ddof=1``)."""

    theta: FloatArray
    mean_c: FloatArray
    var_c: FloatArray
    mean_t: FloatArray
    var_t: FloatArray
    variance_reduction: FloatArray
    """``1 - Var(adjusted difference)/Var(raw difference)``, estimated from the same data."""


class _Moments(NamedTuple):
    n: FloatArray
    mean_y: FloatArray
    var_y: FloatArray
    mean_x: FloatArray
    var_x: FloatArray
    cov_xy: FloatArray


def _imputed_moments(arm: ArmSums, x_bar: FloatArray) -> _Moments:
    n, sum_y, sum_y2, n_x, sum_x, sum_x2, sum_xy, sum_y_x = (
        np.asarray(a, dtype=float) for a in arm
    )
    missing = n - n_x
    sx = sum_x + missing * x_bar
    sxx = sum_x2 + missing * x_bar**2
    sxy = sum_xy + x_bar * (sum_y - sum_y_x)
    mean_y, var_y = mean_and_variance(n, sum_y, sum_y2)
    mean_x, var_x = mean_and_variance(n, sx, sxx)
    with np.errstate(divide="ignore", invalid="ignore"):
        cov_xy = (sxy - sx * mean_y) / (n - 1)
    return _Moments(n, mean_y, var_y, mean_x, var_x, cov_xy)


def cuped(control: ArmSums, variant: ArmSums) -> CupedArms:
    """CUPED adjustment of a control/variant pair.

    Args:
        control, variant: Sufficient statistics with the covariate sums filled in.

    Returns:
        The pooled slope ``θ``, the adjusted mean and per-user variance
        ``var(y) + θ²var(x) - 2θcov(x, y)`` of each arm, and the estimated variance reduction of
        the difference. Feed the adjusted means and variances to
        :func:`mixai_ml.ab.stats.welch_ttest` (or :func:`~mixai_ml.ab.stats.wald_ztest`).
    """
    n_x = np.asarray(control.n_x, dtype=float) + np.asarray(variant.n_x, dtype=float)
    sum_x = np.asarray(control.sum_x, dtype=float) + np.asarray(variant.sum_x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        # nobody has x yet: x = 0 for all, so θ = 0 and nothing is adjusted
        x_bar = np.where(n_x > 0, sum_x / n_x, 0.0)
    c = _imputed_moments(control, x_bar)
    t = _imputed_moments(variant, x_bar)
    numerator = (c.n - 1) * c.cov_xy + (t.n - 1) * t.cov_xy
    denominator = (c.n - 1) * c.var_x + (t.n - 1) * t.var_x
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(denominator > 0, numerator / denominator, 0.0)

    def adjusted(m: _Moments) -> tuple[FloatArray, FloatArray]:
        mean = m.mean_y - theta * (m.mean_x - x_bar)
        var = m.var_y + theta**2 * m.var_x - 2.0 * theta * m.cov_xy
        return mean, np.maximum(var, 0.0)

    mean_c, var_c = adjusted(c)
    mean_t, var_t = adjusted(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        reduction = 1.0 - (var_t / t.n + var_c / c.n) / (t.var_y / t.n + c.var_y / c.n)
    return CupedArms(theta, mean_c, var_c, mean_t, var_t, reduction)
