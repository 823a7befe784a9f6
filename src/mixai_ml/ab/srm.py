"""Sample-ratio mismatch (SRM): are the users split as the experiment was configured?

A split far from the configured weights means the assignment or the logging is broken (users
dropped, bots, redirects), and every effect estimate of the experiment is suspect. The check is
Pearson's chi-square goodness-of-fit test of the assigned-user counts against the weights
(Fabijan et al. 2019); a p-value below a strict threshold (0.001 by default) invalidates the
experiment.

Reference:
    Fabijan, A., Gupchup, J., Gupta, S., Omhover, J., Qin, W., Vermeer, L. & Dmitriev, P. (2019).
    Diagnosing sample ratio mismatch in online controlled experiments. KDD '19.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats


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
    return float(stats.chisquare(observed, expected).pvalue)
