"""Number formatting of the Markdown reports (A/B and monitoring): NaN and None print as "–"."""

from __future__ import annotations

import math
from typing import Any

MISSING = "–"


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (NaN, infinite, missing or not a number)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def number(value: Any, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits."""
    x = finite(value)
    return MISSING if x is None else f"{x:.{digits}g}"


def percent(value: Any) -> str:
    """A fraction as a signed percentage, ``+1.23 %``."""
    x = finite(value)
    return MISSING if x is None else f"{100 * x:+.2f} %"


def p_value(value: Any) -> str:
    """A p-value with four decimals, or ``<0.0001``."""
    x = finite(value)
    if x is None:
        return MISSING
    return "<0.0001" if x < 1e-4 else f"{x:.4f}"
