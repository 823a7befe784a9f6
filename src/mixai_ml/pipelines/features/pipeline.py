"""``features``: extract new jobs, store them, publish the feature table and a report."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_ml.pipelines.features import nodes


def create_pipeline(**kwargs: Any) -> Pipeline:
    return Pipeline(
        [
            node(
                nodes.extract_new_jobs,
                inputs=[
                    "jobs",
                    "ml_consent",
                    "existing_feature_keys",
                    "job_audio_files",
                    "params:features",
                ],
                outputs=["features_store", "feature_failures", "feature_extraction_summary"],
                name="extract_new_jobs",
            ),
            node(
                nodes.current_feature_table,
                inputs="features_store",
                outputs="feature_table",
                name="publish_feature_table",
            ),
            node(
                nodes.write_report,
                inputs=["feature_extraction_summary", "feature_failures"],
                outputs="features_report",
                name="write_features_report",
            ),
        ]
    )
