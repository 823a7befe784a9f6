"""Assertion helpers of the edge-graph tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixai_inference import FEATURE_NAMES
from mixai_ml.edge.parity import FEATURE_FAMILIES, Family


def outside_tolerance(
    graph: np.ndarray,
    reference: np.ndarray,
    families: Sequence[Family] = FEATURE_FAMILIES,
    names: Sequence[str] = FEATURE_NAMES,
) -> list[str]:
    """Every value of ``graph`` outside its family's tolerance around ``reference``."""
    column = {name: i for i, name in enumerate(names)}
    misses = []
    for family in families:
        for name in family.names:
            g, r = float(graph[column[name]]), float(reference[column[name]])
            if not abs(g - r) <= family.atol + family.rtol * abs(r):
                misses.append(f"{name} ({family.name}): graph {g:.7g}, numpy {r:.7g}")
    return misses
