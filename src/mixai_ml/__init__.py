"""MIXAI ML: the Kedro project that learns mix parameters from what users chose."""

import warnings

__version__ = "0.1.0"

# Kedro 1.7's config loader calls an OmegaConf API that the newest OmegaConf deprecates; the
# warning is Kedro's to fix and would otherwise print on every run and CLI call.
warnings.filterwarnings(
    "ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning
)
