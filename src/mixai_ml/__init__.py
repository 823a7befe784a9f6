"""MIXAI ML: the Kedro project that learns mix parameters from what users chose."""

import warnings

from mixai_inference._version import __version__  # one version for the two packages

# Third-party warnings that would print on every run and say nothing about this project:
# Kedro 1.7's config loader on the newest OmegaConf; Kedro's advice against dots in dataset
# names, which is how the evaluation and export summaries name the per-task datasets of the
# namespaced pipelines; Kedro's "namespace interrupted" for a trunk's multi-task node alone,
# which reads its tasks' run rows by design (docs/pipelines.md, "training"): any other
# interruption still warns. (mlflow's advice on kedro-mlflow's model class cannot be hidden
# here: mlflow shows it under its own simplefilter("once"), which outranks these.)
QUIET_WARNINGS = (
    r"register_new_resolver\(\) is deprecated",
    r"One or more dataset names contain '\.' characters",
    r"Namespace '\w+' is interrupted by nodes \['train_\w+_multitask'\] and thus invalid",
)


def quiet_known_warnings() -> None:
    """Ignore the :data:`QUIET_WARNINGS` (``UserWarning``); done on import."""
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)


quiet_known_warnings()

__all__ = ["QUIET_WARNINGS", "__version__", "quiet_known_warnings"]
