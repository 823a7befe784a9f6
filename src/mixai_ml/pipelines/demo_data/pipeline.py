"""``demo_data``: build the synthetic MIXAI world, deterministic by seed.

``kedro run --pipelines=demo_data`` replaces the rows of the application tables, rewrites
the job audio (``demo_job_audio``) and the ground truth beside it.
``--params=demo_data.size=tiny`` builds the 40-job world the tests use.
"""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_ml.pipelines.demo_data import nodes


def create_pipeline(**kwargs: Any) -> Pipeline:
    return Pipeline(
        [
            node(
                nodes.simulate_world,
                inputs=["params:demo_data", "demo_job_audio"],
                outputs="demo_world",
                name="simulate_world",
            ),
            node(
                nodes.application_tables,
                inputs="demo_world",
                outputs=["jobs", "ml_consent", "ml_exclusions", "labels"],
                name="write_application_tables",
            ),
            node(
                nodes.serving_logs,
                inputs="demo_world",
                outputs="model_metrics",
                name="write_serving_logs",
            ),
            node(
                nodes.experiment_logs,
                inputs="params:demo_data",
                outputs=["ab_test_assignments", "ab_test_metrics", "demo_experiment_truth"],
                name="write_experiment_logs",
            ),
            node(
                nodes.run_time_control,
                inputs="params:demo_data",
                outputs=["ml_feature_flags", "ab_experiments"],
                name="write_run_time_control",
            ),
            node(
                nodes.world_truth,
                inputs=["demo_world", "demo_experiment_truth"],
                outputs=[
                    "demo_ground_truth",
                    "demo_ground_truth_users",
                    "demo_ground_truth_jobs",
                    "world_oracle",
                ],
                name="write_ground_truth",
            ),
        ]
    )
