"""Sample-ratio mismatch (SRM): are the users split as the experiment was configured?

A split far from the configured weights means the assignment or the logging is broken (users
dropped, bots, redirects), and every effect estimate of the experiment is suspect. Two checks:

* **fixed**: Pearson's chi-square goodness-of-fit test of the assigned-user counts against the
  weights (Fabijan et al. 2019), valid when looked at once;
* **sequential**: the Dirichlet-multinomial Bayes factor of Lindon & Malek (2022), an
  e-process: under a correct split ``P(sup_t BF_t ≥ 1/α) ≤ α`` (Ville's inequality), so the
  running p-value ``min(1, 1/max_{s≤t} BF_s)`` may be checked after every day (or every user)
  and still raises a false alarm with probability at most ``α`` over the whole experiment.
  Looking at the chi-square every day instead raises false alarms far more often.

With counts ``n`` over the variants, expected shares ``p`` and the prior ``Dirichlet(k·p)``
(concentration ``k``), ``BF = B(k·p + n)/B(k·p) / Π p_i^{n_i}``, ``B`` the multivariate beta
function. ``k`` sets the size of mismatch the test is quickest to find (about ``1/√k`` in share);
it is fixed in advance, like the tuning of the confidence sequences.

A p-value below a strict threshold (0.001 by default) invalidates the experiment.

References:
    Fabijan, A., Gupchup, J., Gupta, S., Omhover, J., Qin, W., Vermeer, L. & Dmitriev, P. (2019).
    Diagnosing sample ratio mismatch in online controlled experiments. KDD '19.
    Lindon, M. & Malek, A. (2022). Anytime-valid inference for multinomial count data. NeurIPS.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from mixai_ml.ab.stats import FloatArray


def srm_p_value(counts: Mapping[str, int], weights: Mapping[str, float]) -> float:
    """Chi-square p-value of the observed variant counts against the configured weights.

    Args:
        counts: Variant -> assigned users. Variants missing here count as 0.
        weights: Variant -> relative weight (need not sum to 1).

    Returns:
        The p-value (1.0 with fewer than two weighted variants or no users); 0.0 when users were
        assigned to a variant whose weight is 0 or that is not configured at all.
    """
    if any(value < 0 for value in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"weights must be non-negative and not all zero, got {dict(weights)}")
    if any(counts.get(name, 0) > 0 for name in counts if weights.get(name, 0.0) == 0):
        return 0.0
    names = [name for name, weight in weights.items() if weight > 0]
    observed = np.array([counts.get(name, 0) for name in names], dtype=float)
    if len(names) < 2 or observed.sum() == 0:
        return 1.0
    share = np.array([weights[name] for name in names], dtype=float)
    expected = observed.sum() * share / share.sum()
    chi_square = float(((observed - expected) ** 2 / expected).sum())
    # the ufunc directly: stats.chisquare costs 0.5 ms a call, a platform has thousands of them
    return float(special.chdtrc(len(names) - 1, chi_square))


def sequential_srm_p_values(
    cumulative_counts: ArrayLike, shares: ArrayLike, concentration: float = 10_000.0
) -> FloatArray:
    """Anytime-valid SRM p-values at every look (Lindon & Malek 2022), vectorised.

    Args:
        cumulative_counts: Users assigned so far per variant at each look, shape
            ``(..., looks, variants)`` (e.g. ``(experiments, days, variants)``), non-decreasing
            along the looks.
        shares: Expected share of each variant, shape ``(..., variants)`` (any positive scale;
            normalised here). Variants with share 0 must have no users (else p = 0).
        concentration: Prior concentration ``k`` (> 0).

    Returns:
        The running p-value ``min(1, 1/max_{s≤t} BF_s)``, shape ``(..., looks)``.
    """
    if concentration <= 0:
        raise ValueError(f"concentration must be positive, got {concentration}")
    counts = np.asarray(cumulative_counts, dtype=float)
    share = np.asarray(shares, dtype=float)
    share = share / share.sum(axis=-1, keepdims=True)
    share = np.expand_dims(share, axis=-2)  # broadcast over the looks
    weighted = share > 0
    prior = np.where(weighted, concentration * share, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_bf = (
            special.gammaln(concentration)
            - special.gammaln(concentration + counts.sum(axis=-1))
            + np.sum(
                np.where(
                    weighted,
                    special.gammaln(prior + counts)
                    - special.gammaln(prior)
                    - counts * np.log(np.where(weighted, share, 1.0)),
                    0.0,
                ),
                axis=-1,
            )
        )
    impossible = np.any(~weighted & (counts > 0), axis=-1)  # users where none are expected
    log_bf = np.where(impossible, np.inf, log_bf)
    return np.minimum(1.0, np.exp(-np.maximum.accumulate(log_bf, axis=-1)))
