"""``ab_analysis``: reads only ``ab_test_assignments`` / ``ab_test_metrics`` (through the sums of
:mod:`mixai_ml.ab.store`, kept up to date from new rows), ``ab_experiments`` and its parameters."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_ml.pipelines.ab_analysis import nodes


def create_pipeline(**kwargs: Any) -> Pipeline:
    """Sufficient statistics → results table and CSV → report."""
    return Pipeline(
        [
            node(
                nodes.refresh_ab_statistics,
                inputs=["app_db", "params:ab_analysis"],
                outputs="ab_statistics",
                name="refresh_ab_statistics",
            ),
            node(
                nodes.analyse_ab_tests,
                inputs=["ab_statistics", "params:ab_analysis"],
                outputs=["ab_analysis_results", "ab_experiment_decisions", "ab_sequential_paths"],
                name="analyse_ab_tests",
            ),
            node(
                nodes.publish_ab_results,
                inputs="ab_analysis_results",
                outputs=["ab_test_results", "ab_test_results_csv"],
                name="publish_ab_results",
            ),
            node(
                nodes.render_ab_report,
                inputs=[
                    "ab_analysis_results",
                    "ab_experiment_decisions",
                    "ab_sequential_paths",
                    "params:ab_analysis",
                ],
                outputs=["ab_report", "ab_overview_plot", "ab_experiment_plots"],
                name="render_ab_report",
            ),
        ],
        tags="ab_analysis",
    )
