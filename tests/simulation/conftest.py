"""A tiny world shared by the simulation tests; this folder's helper module
(``simulation_params``) made importable under ``--import-mode=importlib``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from simulation_params import demo_params  # noqa: E402

from mixai_ml.datasets.audio import AudioFolder  # noqa: E402
from mixai_ml.simulation.config import WorldConfig  # noqa: E402
from mixai_ml.simulation.world import World, build_world  # noqa: E402


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Path]:
    """The tiny world (40 jobs) and its audio root, built once with two workers."""
    root = tmp_path_factory.mktemp("tiny_world")
    config = WorldConfig.from_params(demo_params(size="tiny", n_workers=2))
    return build_world(config, AudioFolder(root)), root
