"""Audio DSP of the project: the mastering chain that renders mastering parameters."""

from mixai_ml.dsp.mastering import PARAM_NAMES, PARAM_RANGES, MasteringParams, render_master

__all__ = ["PARAM_NAMES", "PARAM_RANGES", "MasteringParams", "render_master"]
