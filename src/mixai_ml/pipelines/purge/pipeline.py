"""``purge``: hourly by default (conf/base/airflow.yml, docs/scheduling.md), so that a
withdrawn user's data is gone well within the 24 hours of CONTRACTS §4."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_ml.pipelines.purge import nodes


def create_pipeline(**kwargs: Any) -> Pipeline:
    return Pipeline(
        [
            node(
                nodes.purge,
                inputs=["app_db", "personal_data_files", "params:purge", "params:ab_analysis"],
                outputs="purge_summary",
                name="purge",
            )
        ]
    )
