"""Ratio metrics (per job, not per user) by the delta method, with CUPED, from sums.

A ratio metric divides two sums over the users of an arm: ``R = Σ_u a_u / Σ_u b_u``, e.g. errors
per job with ``a_u`` the user's errors and ``b_u`` their jobs. Users, not jobs, are randomised, so
the jobs of one user are not independent: the variance of ``R̂`` comes from the per-user pairs
``(a_u, b_u)`` by the delta method,

    Var(R̂) ≈ Var_u(L_u) / n,     L_u = (a_u − R̂·b_u) / b̄,

the variance of the *linearised* per-user values ``L_u`` (Deng, Knoblich & Lu 2018, §3). Writing
``y_u = R̂ + L_u`` makes the ratio an ordinary mean (``ȳ = R̂``, ``Var(ȳ) = Var(R̂)``), so the
tests, relative lift, confidence sequence, power and CUPED of :mod:`mixai_ml.ab.analysis` apply
unchanged. CUPED regresses ``y_u`` on the pre-exposure covariate ``x_u`` (the user's
``<metric>__pre`` mean), which is the linearised form of the regression-adjusted ratio
(Deng et al. 2013, §3.3); users without ``x`` are imputed as in :mod:`mixai_ml.ab.cuped`.

References:
    Deng, A., Knoblich, U. & Lu, J. (2018). Applying the delta method in metric analytics: a
    practical guide with novel ideas. KDD '18.
    Deng, A., Xu, Y., Kohavi, R. & Walker, T. (2013). Improving the sensitivity of online
    controlled experiments by utilizing pre-experiment data. WSDM '13.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mixai_ml.ab.stats import ArmSums, Values


class RatioSums(NamedTuple):
    """Sufficient statistics of one arm of a ratio metric (scalars or arrays that broadcast).

    ``a``: the user's numerator (the sum of their rows), ``b``: their denominator (the number
    of their rows); ``x``: their pre-exposure covariate, present for ``n_x`` users, over whom
    ``sum_a_x`` and ``sum_b_x`` sum ``a`` and ``b``.
    """

    n: Values
    sum_a: Values
    sum_b: Values
    sum_a2: Values
    sum_b2: Values
    sum_ab: Values
    n_x: Values = 0.0
    sum_x: Values = 0.0
    sum_x2: Values = 0.0
    sum_ax: Values = 0.0
    sum_bx: Values = 0.0
    sum_a_x: Values = 0.0
    sum_b_x: Values = 0.0


def linearise(arm: RatioSums) -> ArmSums:
    """The sufficient statistics of ``y_u = R̂ + L_u`` (see the module docstring).

    Returns:
        :class:`ArmSums` whose mean is the arm's ratio ``R̂ = Σa/Σb`` and whose per-user
        variance is the delta-method ``Var_u(L_u)`` (so ``var/n`` is ``Var(R̂)``), with the
        covariate sums of ``y``. NaN where ``Σb = 0``.
    """
    n, sum_a, sum_b, sum_a2, sum_b2, sum_ab, n_x, sum_x, sum_x2, sum_ax, sum_bx, a_x, b_x = (
        np.asarray(value, dtype=float) for value in arm
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sum_b != 0, sum_a / sum_b, np.nan)
        b_mean = sum_b / n
        sum_l2 = (sum_a2 - 2.0 * ratio * sum_ab + ratio**2 * sum_b2) / b_mean**2
        sum_lx = (sum_ax - ratio * sum_bx) / b_mean
        sum_l_x = (a_x - ratio * b_x) / b_mean
    return ArmSums(
        n=n,
        sum_y=n * ratio,
        sum_y2=n * ratio**2 + np.maximum(sum_l2, 0.0),
        n_x=n_x,
        sum_x=sum_x,
        sum_x2=sum_x2,
        sum_xy=ratio * sum_x + sum_lx,
        sum_y_x=ratio * n_x + sum_l_x,
    )
