"""A crash in a task's training node leaves its training_jobs row `failed`, not `running`."""

from __future__ import annotations

from typing import Any

import pandas as pd
from kedro.pipeline import node

from mixai_ml.hooks import TrainingJobHooks


class Catalog:
    def __init__(self) -> None:
        self.saved: dict[str, Any] = {}

    def save(self, name: str, data: Any) -> None:
        self.saved[name] = data


def test_failed_training_is_recorded() -> None:
    started = pd.DataFrame([{"training_job_id": "t1", "task": "master_reg", "status": "running"}])
    train = node(lambda *args: None, ["a", "b"], "c", name="train", namespace="master_reg")
    catalog = Catalog()

    TrainingJobHooks().on_node_error(
        RuntimeError("out of memory"), train, catalog, {"master_reg.training_job": started}
    )

    row = catalog.saved["master_reg.training_job_finished"].iloc[0]
    assert row["training_job_id"] == "t1"
    assert row["status"] == "failed"
    assert row["reason"] == "RuntimeError: out of memory"
    assert pd.notna(row["finished_at"])


def test_other_nodes_are_ignored() -> None:
    catalog = Catalog()
    other = node(lambda *args: None, ["a"], "c", name="evaluate", namespace="master_reg")
    TrainingJobHooks().on_node_error(RuntimeError("x"), other, catalog, {})
    assert catalog.saved == {}
