"""Power, minimum detectable effect and required sample size, from a comparison's standard error.

Every metric type ends in an estimate ``Δ̂`` with a standard error ``se`` at the current arm
sizes (a difference of means, of proportions, of ratios, of quantiles; CUPED-adjusted where
used). With the normal approximation of the two-sided test at level ``α``:

* power against a target effect ``δ``: ``Φ(|δ|/se − z) + Φ(−|δ|/se − z)``, ``z = z_{1−α/2}``;
* MDE (smallest ``|δ|`` detected with power ``1 − β`` now): ``(z + z_{1−β})·se``;
* required control users for ``δ`` at a planned ``n_variant/n_control = ratio``: the per-user
  variance implied by ``se``, ``σ² = se²/(1/n_c + 1/n_t)``, in
  ``n_c = σ²·(1 + 1/ratio)·((z + z_{1−β})/δ)²``.

For a difference of means with per-user sd ``σ`` this is ``statsmodels``' ``NormalIndPower``
with ``effect_size = δ/σ`` (tested); the t-based version differs by less than 1 % above 50 users
per arm. Everything is vectorised: one call serves every row of the analysis.

Reference:
    Cohen, J. (1988). Statistical Power Analysis for the Behavioral Sciences, 2nd ed., ch. 2.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from mixai_ml.ab.stats import FloatArray


class PowerResult(NamedTuple):
    """Design numbers of each comparison (NaN where they cannot be computed)."""

    power: FloatArray
    """Chance to detect the target effect with the current arm sizes."""
    mde: FloatArray
    """Smallest absolute effect (metric units, > 0) detected with ``target_power`` now."""
    required_n_per_variant: FloatArray
    """Control-arm users needed to detect the target effect with ``target_power``; the variant
    arm needs ``ratio`` times as many."""


def power_analysis(
    *,
    se: ArrayLike,
    n_c: ArrayLike,
    n_t: ArrayLike,
    target_effect: ArrayLike,
    ratio: ArrayLike = 1.0,
    alpha: float = 0.05,
    target_power: float = 0.8,
) -> PowerResult:
    """Power of the current comparisons, their MDE and the sample size the target effect needs.

    Args:
        se: Standard error of each effect estimate at the current sizes.
        n_c, n_t: Current users in control and variant.
        target_effect: The effect worth detecting, absolute (the sign is ignored).
        ratio: Planned ``n_variant/n_control`` for the required sample size.
        alpha: Two-sided level.
        target_power: Power wanted for the MDE and the required sample size.
    """
    se, n_c, n_t, delta, ratio = (
        np.asarray(a, dtype=float) for a in (se, n_c, n_t, target_effect, ratio)
    )
    z = stats.norm.ppf(1.0 - alpha / 2.0)
    z_power = stats.norm.ppf(target_power)
    usable = (se > 0) & np.isfinite(se) & (n_c >= 2) & (n_t >= 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        signal = np.abs(delta) / se
        power = stats.norm.cdf(signal - z) + stats.norm.cdf(-signal - z)
        unit_variance = se**2 / (1.0 / n_c + 1.0 / n_t)
        required = unit_variance * (1.0 + 1.0 / ratio) * ((z + z_power) / delta) ** 2
    ok = usable & (delta != 0) & np.isfinite(delta)
    return PowerResult(
        power=np.where(ok, power, np.nan),
        mde=np.where(usable, (z + z_power) * se, np.nan),
        required_n_per_variant=np.where(ok, required, np.nan),
    )
