"""The ``demo_data`` parameters of ``conf/base``, for tests that build worlds without Kedro."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

PARAMETERS = Path(__file__).resolve().parents[2] / "conf" / "base" / "parameters_demo_data.yml"


def demo_params(**overrides: Any) -> dict[str, Any]:
    """The ``demo_data`` parameters with top-level ``overrides`` (e.g. ``size="tiny"``)."""
    params = copy.deepcopy(yaml.safe_load(PARAMETERS.read_text())["demo_data"])
    params.update(overrides)
    return params
