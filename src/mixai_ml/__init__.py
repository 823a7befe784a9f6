"""MIXAI ML: the Kedro project that learns mix parameters from what users chose."""

__version__ = "0.1.0"
