"""MIXAI ML: the Kedro project that learns mix parameters from what users chose."""

import warnings

from mixai_inference._version import __version__  # one version for the two packages

# Third-party warnings that would print on every run and say nothing about this project:
# Kedro 1.7's config loader on the newest OmegaConf; kedro-mlflow importing mlflow's pyfunc
# (even with tracking off); Kedro's advice against dots in dataset names, which is how the
# evaluation and export summaries name the per-task datasets of the namespaced pipelines.
for _message in (
    r"register_new_resolver\(\) is deprecated",
    r".*Add type hints to the `predict` method",
    r"One or more dataset names contain '\.' characters",
):
    warnings.filterwarnings("ignore", message=_message, category=UserWarning)

__all__ = ["__version__"]
