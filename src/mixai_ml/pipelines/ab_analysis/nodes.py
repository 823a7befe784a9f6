"""Thin nodes over :mod:`mixai_ml.ab`: the statistics live there."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from mixai_ml.ab.analysis import analyse_experiments, combine_daily_stats
from mixai_ml.ab.config import AbSettings, weights_from_table
from mixai_ml.ab.report import forest_plot, markdown_report, sequential_plot


def analyse_ab_tests(
    assignment_counts: pd.DataFrame,
    metric_stats: pd.DataFrame,
    covariate_stats: pd.DataFrame,
    experiments: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every experiment × metric × non-control variant, one decision per experiment, paths.

    Args:
        assignment_counts: ``ab_assignment_counts`` (SQL).
        metric_stats: ``ab_metric_daily_stats`` (SQL).
        covariate_stats: ``ab_covariate_daily_stats`` (SQL).
        experiments: ``ab_experiments``: each experiment's expected weights.
        params: ``ab_analysis`` parameters.

    Returns:
        The results (the fixed columns of docs/data_contracts.md §6, then the extra ones),
        the decisions and the daily sequential paths of the primary metrics.
    """
    analysis = analyse_experiments(
        assignment_counts,
        combine_daily_stats(metric_stats, covariate_stats),
        AbSettings.from_params(params, weights_from_table(experiments)),
        analysed_at=datetime.now(UTC),
    )
    return analysis.results, analysis.decisions, analysis.paths


def publish_ab_results(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same rows for the ``ab_test_results`` table (upsert) and the CSV."""
    return results, results


def render_ab_report(
    results: pd.DataFrame, decisions: pd.DataFrame, paths: pd.DataFrame, params: dict[str, Any]
) -> tuple[str, Figure, Figure]:
    """Markdown report, forest plot and sequential-path plot."""
    settings = AbSettings.from_params(params)
    analysed_at = (
        str(results["analysed_at"].iloc[0]) if len(results) else datetime.now(UTC).isoformat()
    )
    return (
        markdown_report(results, decisions, settings, analysed_at),
        forest_plot(results, settings),
        sequential_plot(paths),
    )
