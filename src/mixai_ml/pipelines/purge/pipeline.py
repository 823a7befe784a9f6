"""``purge``: run at least daily (see docs/privacy.md) to keep the 24-hour promise."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_ml.pipelines.purge import nodes


def create_pipeline(**kwargs: Any) -> Pipeline:
    return Pipeline(
        [
            node(
                nodes.purge,
                inputs=["app_db", "derived_training_data"],
                outputs="purge_audit",
                name="purge",
            )
        ]
    )
