"""``monitoring``: reads only ``model_metrics`` and ``labels`` (SQL through ``app_db``), and for
the purge's deadlines ``ml_consent``, legal holds, ``purge_withdrawals`` and ``purge_runs``."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_ml.pipelines.monitoring import nodes


def create_pipeline(**kwargs: Any) -> Pipeline:
    """Windows, drift and alerts → report, plots and machine-readable summary."""
    return Pipeline(
        [
            node(
                nodes.summarise_windows,
                inputs=["app_db", "params:monitoring"],
                outputs=[
                    "monitoring_summary",
                    "monitoring_alerts",
                    "monitoring_series",
                    "monitoring_drift_series",
                    "monitoring_privacy",
                ],
                name="summarise_windows",
            ),
            node(
                nodes.render_monitoring_report,
                inputs=[
                    "monitoring_summary",
                    "monitoring_alerts",
                    "monitoring_series",
                    "monitoring_drift_series",
                    "monitoring_privacy",
                    "params:monitoring",
                ],
                outputs=[
                    "monitoring_report",
                    "monitoring_plot",
                    "monitoring_drift_plot",
                    "monitoring_summary_json",
                ],
                name="render_monitoring_report",
            ),
        ],
        tags="monitoring",
    )
