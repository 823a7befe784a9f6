"""``ab_analysis``: reads only ``ab_test_assignments`` / ``ab_test_metrics`` (through SQL
aggregates in ``catalog_ab_analysis.yml``), ``ab_experiments`` (the expected weights) and its
parameters."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_ml.pipelines.ab_analysis import nodes


def create_pipeline(**kwargs: Any) -> Pipeline:
    """Sufficient statistics → results table and CSV → report."""
    return Pipeline(
        [
            node(
                nodes.analyse_ab_tests,
                inputs=[
                    "ab_assignment_counts",
                    "ab_metric_daily_stats",
                    "ab_covariate_daily_stats",
                    "ab_experiments",
                    "params:ab_analysis",
                ],
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
                outputs=["ab_report", "ab_forest_plot", "ab_sequential_plot"],
                name="render_ab_report",
            ),
        ],
        tags="ab_analysis",
    )
