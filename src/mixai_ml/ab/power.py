"""Power, minimum detectable effect and required sample size (statsmodels.stats.power).

Means use the two-sample t-test power (``TTestIndPower``) with the standardised effect
``d = Δ/sd``; proportions use the normal approximation (``NormalIndPower``) with Cohen's
arcsine effect size ``h = 2·asin(√p₁) - 2·asin(√p₀)`` (``proportion_effectsize``). After CUPED
the adjusted standard deviation is used (and proportions are treated as means), so variance
reduction shows up as higher power and a smaller MDE. All tests are two-sided at ``alpha``.

Reference:
    Cohen, J. (1988). Statistical Power Analysis for the Behavioral Sciences, 2nd ed., ch. 2 and 6.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize


class PowerResult(NamedTuple):
    """Design numbers of one comparison (NaN where they cannot be computed)."""

    power: float
    """Chance to detect the target effect with the current arm sizes."""
    mde: float
    """Smallest effect (absolute, metric units, > 0) detected with ``target_power`` now."""
    required_n_per_variant: float
    """Control-arm users needed to detect the target effect with ``target_power``; the variant
    arm needs ``ratio`` times as many."""


def _safe(compute: Callable[[], float]) -> float:
    """``compute()``, or NaN when statsmodels' root finder fails or returns a non-finite value."""
    try:
        value = float(compute())
    except (ValueError, ZeroDivisionError, RuntimeError, FloatingPointError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def power_analysis(
    *,
    proportion: bool,
    mean_c: float,
    sd: float,
    n_c: float,
    n_t: float,
    target_effect: float,
    ratio: float = 1.0,
    alpha: float = 0.05,
    target_power: float = 0.8,
) -> PowerResult:
    """Power of the current experiment, its MDE and the sample size the target effect needs.

    Args:
        proportion: Use the arcsine effect size around the control rate ``mean_c`` (else ``d``).
        mean_c: Control mean (the rate for proportions).
        sd: Per-user standard deviation (pooled over arms; CUPED-adjusted when used).
        n_c, n_t: Current users in control and variant.
        target_effect: The effect worth detecting, absolute, signed in the *good* direction
            (e.g. ``+0.01`` for a rate that should rise, ``-5`` ms for a latency).
        ratio: Planned ``n_variant/n_control`` for the required sample size.
        alpha: Two-sided level.
        target_power: Power wanted for the MDE and the required sample size.
    """
    if n_c < 2 or n_t < 2 or not math.isfinite(mean_c) or target_effect == 0:
        return PowerResult(math.nan, math.nan, math.nan)
    current_ratio = n_t / n_c
    if proportion:
        if not 0.0 < mean_c < 1.0 or not 0.0 < mean_c + target_effect < 1.0:
            return PowerResult(math.nan, math.nan, math.nan)
        engine: NormalIndPower | TTestIndPower = NormalIndPower()
        effect_size = abs(float(proportion_effectsize(mean_c + target_effect, mean_c)))
    else:
        if not sd > 0:
            return PowerResult(math.nan, math.nan, math.nan)
        engine = TTestIndPower()
        effect_size = abs(target_effect) / sd
    power = _safe(
        lambda: engine.power(effect_size=effect_size, nobs1=n_c, alpha=alpha, ratio=current_ratio)
    )
    if math.isnan(power):
        # statsmodels' noncentral t underflows for large noncentrality (power ≈ 1 there)
        power = _safe(
            lambda: NormalIndPower().power(
                effect_size=effect_size, nobs1=n_c, alpha=alpha, ratio=current_ratio
            )
        )
    required = _safe(
        lambda: engine.solve_power(
            effect_size=effect_size, nobs1=None, alpha=alpha, power=target_power, ratio=ratio
        )
    )
    mde_size = _safe(
        lambda: engine.solve_power(
            effect_size=None, nobs1=n_c, alpha=alpha, power=target_power, ratio=current_ratio
        )
    )
    if proportion:
        # invert h = 2·asin(√p₁) - 2·asin(√p₀) in the good direction
        angle = math.asin(math.sqrt(mean_c)) + math.copysign(mde_size, target_effect) / 2.0
        mde = abs(math.sin(angle) ** 2 - mean_c) if 0.0 <= angle <= math.pi / 2 else math.nan
    else:
        mde = mde_size * sd
    return PowerResult(power, mde, required)
