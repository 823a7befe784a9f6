"""The three tasks and their label spaces (CONTRACTS §5), shared by training and serving."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

MASTER_REG: Final = "master_reg"
PRESET_CLS: Final = "preset_cls"
ALIGN_CONF: Final = "align_conf"
TASKS: Final = (MASTER_REG, PRESET_CLS, ALIGN_CONF)

MASTER_PARAM_RANGES: Final = MappingProxyType(
    {
        "target_lufs": (-20.0, -6.0),
        "eq_low_gain_db": (-6.0, 6.0),
        "eq_mid_gain_db": (-6.0, 6.0),
        "eq_high_gain_db": (-6.0, 6.0),
        "comp_threshold_db": (-30.0, 0.0),
        "comp_ratio": (1.0, 8.0),
        "limiter_ceiling_dbtp": (-3.0, 0.0),
        "stereo_width": (0.5, 1.5),
    }
)
"""Mastering parameters in contract order, each with its (low, high) range."""

MASTER_PARAM_NAMES: Final = tuple(MASTER_PARAM_RANGES)

PRESETS: Final = (
    "natural",
    "bright_pop",
    "warm_ballad",
    "punchy_rock",
    "loud_edm",
    "soft_acoustic",
)
"""Preset classes in contract order; model scores come in this order."""

ALIGN_TOLERANCE_MS: Final = 20.0
"""An alignment is right when the estimate is within this many milliseconds of the truth."""
