"""What was done to each result, in words a product manager can follow.

Every row of ``ab_test_results`` gets a ``corrections`` text: which family of comparisons it was
corrected with and how, whether the decision reads the sequential (look-any-day) or the
fixed-horizon (look-once) numbers, and what was done to the data first (capping, CUPED, ratio or
quantile statistics). The report repeats it per row and explains the vocabulary once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.formatting import finite
from mixai_ml.ab.multiplicity import CORRECTION_NAMES, CORRECTION_PROMISES


def _percent(value: float) -> str:
    return f"{100 * value:.3g} %"


def corrections(row: Mapping[str, Any], settings: AbSettings) -> str:
    """The corrections applied to one result row, as a few plain sentences.

    Args:
        row: A result row (``role``, ``family_size``, ``metric_type``, ``statistic``, ``cuped``,
            ``variance_reduction``, ``cap``, ``capped_share``, ``noninferiority_margin``,
            ``metric``).
        settings: The analysis settings.
    """
    alpha = _percent(settings.alpha)
    sentences: list[str] = []
    if row["role"] == "guardrail":
        sentences.append(
            "Guardrail: not corrected for multiple testing, on purpose: it is a safety check, "
            "and leaving it uncorrected makes a harm easier to catch."
        )
        if finite(row.get("noninferiority_margin")) is not None:
            sentences.append(
                f"To ship, the variant must be shown worse by less than "
                f"{float(row['noninferiority_margin']):.4g} (the non-inferiority margin)."
            )
    else:
        size = int(row["family_size"])
        method = settings.correction
        sentences.append(
            f"{str(row['role']).capitalize()} metric: one of {size} comparison"
            f"{'s' if size != 1 else ''} (primary and secondary metrics × variants) in this "
            f"experiment, corrected together with {CORRECTION_NAMES[method]}: "
            f"{CORRECTION_PROMISES[method]} {alpha}."
            if size > 1
            else f"{str(row['role']).capitalize()} metric: the only tested comparison of this "
            "experiment, so no multiple-testing correction was needed."
        )
    if settings.decision_basis == "sequential":
        sentences.append(
            "Decided on the sequential (always-valid) result, safe to check every day; the "
            "fixed-horizon p-value is shown for reference and holds only for one look at the "
            "planned size."
        )
    else:
        sentences.append(
            "Decided on the fixed-horizon result: valid for one look at the planned size, not "
            "for daily peeking."
        )
    kind = str(row["metric_type"])
    if kind == "ratio":
        sentences.append(
            "A ratio over all rows (per job, not per user); its uncertainty counts each user's "
            "rows together (delta method)."
        )
    elif kind == "quantile":
        sentences.append(
            f"The {row['statistic']} of all rows; its interval is widened for users with several "
            "rows."
        )
    if finite(row.get("cap")) is not None:
        share = float(row.get("capped_share") or 0.0)
        sentences.append(
            f"Values capped at {float(row['cap']):.4g} before any statistic "
            f"({_percent(share)} of users were above)."
        )
    if bool(row.get("cuped")):
        reduction = float(row.get("variance_reduction") or 0.0)
        sentences.append(
            f"CUPED used {row['metric']}'s pre-experiment values to remove "
            f"{_percent(max(reduction, 0.0))} of the noise (same estimate on average, narrower "
            "interval)."
        )
    return " ".join(sentences)
