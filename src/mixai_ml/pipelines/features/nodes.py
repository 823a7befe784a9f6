"""Thin Kedro nodes of the features pipeline; the logic is in :mod:`mixai_ml.features`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from mixai_inference import FEATURE_SCHEMA_VERSION
from mixai_ml.features import extraction, report
from mixai_ml.parameters import settings_section

logger = logging.getLogger(__name__)


def extract_new_jobs(
    jobs: pd.DataFrame,
    ml_consent: pd.DataFrame,
    existing_feature_keys: pd.DataFrame,
    job_audio_files: dict[str, Callable[[], Any]],
    params: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Extract the jobs that lack features for the current schema version.

    Returns:
        New ``features_store`` rows, ``feature_failures`` rows and a run summary.
    """
    settings = settings_section(params, "features", optional=("n_workers", "scheduler"))
    todo = extraction.jobs_to_extract(
        jobs, ml_consent, existing_feature_keys, FEATURE_SCHEMA_VERSION
    )
    ready, missing = extraction.job_audio(todo, job_audio_files)
    logger.info(
        "features: %d jobs to extract (%d already done, %d with missing files)",
        len(todo),
        len(existing_feature_keys),
        len(missing),
    )
    started = datetime.now(UTC)
    results = extraction.run_extraction(
        ready, n_workers=settings.get("n_workers"), scheduler=settings.get("scheduler")
    )
    features, failures = extraction.result_tables([*results, *missing], started)
    summary = report.summary(
        n_jobs=len(jobs),
        n_todo=len(todo),
        features=features,
        failures=failures,
        seconds=(datetime.now(UTC) - started).total_seconds(),
    )
    logger.info(
        "features: %s", {key: summary[key] for key in ("extracted", "failed_jobs", "seconds")}
    )
    return features, failures, summary


def current_feature_table(features_store: pd.DataFrame) -> pd.DataFrame:
    """The feature table of the current schema version (for notebooks and analysis)."""
    current = features_store[features_store["schema_version"] == FEATURE_SCHEMA_VERSION]
    return current.sort_values("job_id").reset_index(drop=True)


def write_report(summary: dict[str, Any], feature_failures: pd.DataFrame) -> str:
    return report.markdown(summary, feature_failures)
