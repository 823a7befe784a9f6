"""Thin nodes over :mod:`mixai_ml.ab`: the statistics live there."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import Engine

from mixai_ml.ab.analysis import analyse_experiments
from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.report import experiment_figures, markdown_report, needs_a_look, overview_plot
from mixai_ml.ab.store import AbStatistics, refresh_statistics


def refresh_ab_statistics(app_db: Engine, params: dict[str, Any]) -> AbStatistics:
    """Fold the new days into the stored sums (or rebuild them) and read every experiment's."""
    return refresh_statistics(app_db, AbSettings.from_params(params))


def analyse_ab_tests(
    statistics: AbStatistics, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every experiment × metric × non-control variant, one decision per experiment, paths.

    Returns:
        The results (the fixed columns of docs/data_contracts.md §6, then the extra ones),
        the decisions and the daily sequential paths of the primary metrics.
    """
    analysis = analyse_experiments(
        statistics, AbSettings.from_params(params), analysed_at=datetime.now(UTC)
    )
    return analysis.results, analysis.decisions, analysis.paths


def publish_ab_results(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same rows for the ``ab_test_results`` table (upsert) and the CSV."""
    return results, results


def render_ab_report(
    results: pd.DataFrame, decisions: pd.DataFrame, paths: pd.DataFrame, params: dict[str, Any]
) -> tuple[str, Figure, dict[str, Callable[[], Figure]]]:
    """Markdown report, the overview figure and one figure per experiment shown in full."""
    settings = AbSettings.from_params(params)
    analysed_at = (
        str(results["analysed_at"].iloc[0]) if len(results) else datetime.now(UTC).isoformat()
    )
    urgent = needs_a_look(decisions)
    detailed = urgent[: settings.max_detailed]
    return (
        markdown_report(results, decisions, settings, analysed_at, urgent),
        overview_plot(results, detailed, settings),
        experiment_figures(results, paths, detailed, settings),
    )
