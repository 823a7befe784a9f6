"""``ingest``: load the journals ``mixai-serve`` left behind, idempotently (CONTRACTS §2, §9)."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_ml.pipelines.ingest import nodes


def create_pipeline(**kwargs: Any) -> Pipeline:
    return Pipeline(
        [
            node(
                nodes.ingest,
                inputs=["app_db", "service_journals"],
                outputs="ingest_report",
                name="ingest_journals",
            )
        ]
    )
