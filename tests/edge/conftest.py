"""Shared fixtures of the edge-graph tests: the graphs are built once per session.

``tests/inference`` (``synthetic_audio``, the suite's signals; ``bundle_factory``) and this
folder (``web_support``) are put on ``sys.path``: ``--import-mode=importlib`` does not.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
for _helpers in (str(_HERE.parent / "inference"), str(_HERE)):  # signals, bundles; web_support
    if _helpers not in sys.path:
        sys.path.insert(0, _helpers)

from mixai_ml.edge import build_alignment_graph, build_feature_graph  # noqa: E402
from mixai_ml.edge.parity import FeatureGraphs  # noqa: E402


@pytest.fixture(scope="session")
def graphs() -> FeatureGraphs:
    """The shipped graphs: features resample by themselves; alignment."""
    return FeatureGraphs(build_feature_graph(), build_alignment_graph())


@pytest.fixture(scope="session")
def identical_pcm() -> FeatureGraphs:
    """The feature graph fed the 22.05 kHz signal ``extract_features`` analyses."""
    return FeatureGraphs(build_feature_graph(resampled_input=True))
