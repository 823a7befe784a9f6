"""Kedro project settings."""

import os
from typing import Any

from kedro.config import OmegaConfigLoader

from mixai_inference.flags import parse_bool
from mixai_ml.hooks import TrainingJobHooks
from mixai_ml.tracking import MLFLOW_PLUGIN, MlflowTrackingHooks, tracking_enabled

# Nothing in the project may call the network: telemetry stays off even without .telemetry.
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")


def _env(name: str, default: Any = None) -> Any:
    """``${env:NAME,default}`` in parameters: the environment value, typed like the default."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(default, bool):
        return parse_bool(raw)
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


# Experiment tracking (docs/experiment_tracking.md): kedro-mlflow registers its hooks by itself
# once installed; they stay off unless MIXAI_MLFLOW=1 (read when the project is configured).
_TRACKING = tracking_enabled()

HOOKS = (TrainingJobHooks(), *([MlflowTrackingHooks()] if _TRACKING else []))

DISABLE_HOOKS_FOR_PLUGINS = () if _TRACKING else (MLFLOW_PLUGIN,)

CUSTOM_RESOLVERS = {"env": _env}

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": CUSTOM_RESOLVERS,
}
