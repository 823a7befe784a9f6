"""Always-valid (peeking-safe) inference: the normal-mixture confidence sequence.

For an estimate ``Δ̂`` of the effect with standard error ``se`` the two-sided normal-mixture
boundary (Robbins 1970; Howard et al. 2021, eq. (14); the mixture SPRT of Johari et al. 2017)
gives the confidence sequence

    Δ̂ ± se · sqrt( (1 + η)/η · log((1 + η)/α²) ),     η = τ²/se²,

where ``τ²`` is the variance of the normal mixing distribution over effects. With
``P(∃n: Δ ∉ CS_n) ≤ α`` the interval may be looked at after every user and the experiment
stopped whenever it excludes zero: the error rate stays at most ``α`` (for Gaussian sums exactly,
for i.i.d. users with finite variance asymptotically, Waudby-Smith et al. 2021). The matching
always-valid p-value is ``min(1, 1/Λ)`` with the mixture likelihood ratio

    Λ = (1 + η)^(-1/2) · exp( η/(1 + η) · z²/2 ),     z = Δ̂/se.

Tuning: the mixing variance is fixed in advance through ``tuning_n``, the users per variant at
which the sequence is tightest: ``η = c(α)·n_eff/tuning_n`` with
``c(α) = -2 log α + log(1 - 2 log α)`` (Waudby-Smith et al. 2021, eq. (8): ``ρ² = c(α)/t*``)
and ``n_eff = 2/(1/n_control + 1/n_variant)`` (``= n`` for an even split). For fixed variances and
allocation ``se² ∝ 1/n_eff``, so ``τ² = η·se²`` is constant, as the mixture requires. At
``α = 0.05`` the sequence is 1.55x as wide as the fixed-horizon CI at ``n = tuning_n`` and less
than 2x anywhere from ``tuning_n/10`` to ``100·tuning_n``: a mis-set tuning costs little.

References:
    Robbins, H. (1970). Statistical methods related to the law of the iterated logarithm. Ann.
    Math. Stat. 41(5).
    Howard, S. R., Ramdas, A., McAuliffe, J. & Sekhon, J. (2021). Time-uniform, nonparametric,
    nonasymptotic confidence sequences. Ann. Stat. 49(2).
    Johari, R., Koomen, P., Pekelis, L. & Walsh, D. (2017). Peeking at A/B tests. KDD '17.
    Waudby-Smith, I., Arbour, D., Sinha, R., Kennedy, E. H. & Ramdas, A. (2021). Time-uniform
    central limit theory and asymptotic confidence sequences. arXiv:2103.06476.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from mixai_ml.ab.stats import FloatArray


class ConfidenceSequence(NamedTuple):
    """The always-valid interval and p-value at the current look (NaN/1 before ``min_n``)."""

    ci_low: FloatArray
    ci_high: FloatArray
    p_value: FloatArray


def mixture_constant(alpha: float) -> float:
    """``c(α) = -2 log α + log(1 - 2 log α)``: the ``η`` that makes the sequence tightest."""
    return float(-2.0 * np.log(alpha) + np.log(1.0 - 2.0 * np.log(alpha)))


def effective_n(n_c: ArrayLike, n_t: ArrayLike) -> FloatArray:
    """Twice the harmonic mean of the arm sizes over two: ``2/(1/n_c + 1/n_t)``."""
    n_c, n_t = np.asarray(n_c, dtype=float), np.asarray(n_t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2.0 / (1.0 / n_c + 1.0 / n_t)


def confidence_sequence(
    estimate: ArrayLike,
    se: ArrayLike,
    n_eff: ArrayLike,
    tuning_n: ArrayLike,
    alpha: float = 0.05,
    min_n: float = 100.0,
) -> ConfidenceSequence:
    """Normal-mixture confidence sequence and always-valid p-value for an effect.

    Args:
        estimate: Effect estimate ``Δ̂`` (e.g. a difference of means, CUPED-adjusted or not).
        se: Its standard error.
        n_eff: Effective users per variant, :func:`effective_n`.
        tuning_n: Users per variant at which the sequence is tightest (fixed before the
            experiment starts; choosing it from the data voids the guarantee).
        alpha: Error probability over *all* looks together.
        min_n: Looks with ``n_eff < min_n`` give NaN bounds and ``p = 1`` (the variance
            estimate, and the normal approximation, are not yet reliable).

    Returns:
        ``ConfidenceSequence(ci_low, ci_high, p_value)``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    estimate, se, n_eff, tuning_n = (
        np.asarray(a, dtype=float) for a in (estimate, se, n_eff, tuning_n)
    )
    if np.any(tuning_n <= 0):
        raise ValueError(f"tuning_n must be positive, got {tuning_n}")
    eta = mixture_constant(alpha) * n_eff / tuning_n
    ready = (n_eff >= min_n) & (se > 0) & np.isfinite(se)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        half = se * np.sqrt((1.0 + eta) / eta * np.log((1.0 + eta) / alpha**2))
        z = estimate / se
        p_value = np.minimum(1.0, np.sqrt(1.0 + eta) * np.exp(-eta / (1.0 + eta) * z**2 / 2.0))
    return ConfidenceSequence(
        ci_low=np.where(ready, estimate - half, np.nan),
        ci_high=np.where(ready, estimate + half, np.nan),
        p_value=np.where(ready, p_value, 1.0),
    )
