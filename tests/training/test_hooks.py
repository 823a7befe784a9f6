"""A crash in a node holding training_jobs rows leaves them `failed`, not `running`."""

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


def started(task: str, status: str = "running") -> pd.DataFrame:
    return pd.DataFrame([{"training_job_id": f"{task}-1", "task": task, "status": status}])


def test_failed_training_is_recorded() -> None:
    train = node(lambda *args: None, ["a", "b"], "c", name="train", namespace="master_reg")
    catalog = Catalog()

    TrainingJobHooks().on_node_error(
        RuntimeError("out of memory"),
        train,
        catalog,
        {"master_reg.training_job": started("master_reg")},
    )

    row = catalog.saved["master_reg.training_job_finished"].iloc[0]
    assert row["training_job_id"] == "master_reg-1"
    assert row["status"] == "failed"
    assert row["reason"] == "RuntimeError in master_reg.train: out of memory"
    assert pd.notna(row["finished_at"])


def test_a_failed_multitask_network_fails_each_of_its_tasks_runs() -> None:
    """The trunk's node holds its tasks' rows (not in their namespaces); the choice holds one."""
    multitask = node(lambda *args: None, ["a", "b"], ["c", "d"], name="train_mix_multitask")
    rows = {f"{task}.training_job": started(task) for task in ("master_reg", "preset_cls")}
    rows["toy.training_job"] = started("toy", "skipped")  # below the gate: stays skipped
    catalog = Catalog()
    TrainingJobHooks().on_node_error(
        ValueError("NaN loss"), multitask, catalog, {"features_store": pd.DataFrame(), **rows}
    )
    assert set(catalog.saved) == {
        "master_reg.training_job_finished",
        "preset_cls.training_job_finished",
    }
    for task in ("master_reg", "preset_cls"):
        row = catalog.saved[f"{task}.training_job_finished"].iloc[0]
        assert (row["training_job_id"], row["status"]) == (f"{task}-1", "failed")
        assert row["reason"] == "ValueError in train_mix_multitask: NaN loss"

    choose = node(
        lambda *args: None, ["a", "b"], "c", name="choose_candidate", namespace="preset_cls"
    )
    catalog = Catalog()
    TrainingJobHooks().on_node_error(
        KeyError("history"), choose, catalog, {"preset_cls.training_job": started("preset_cls")}
    )
    assert catalog.saved["preset_cls.training_job_finished"]["status"].tolist() == ["failed"]


def test_other_nodes_and_skipped_runs_are_left_alone() -> None:
    catalog = Catalog()
    other = node(lambda *args: None, ["a"], "c", name="evaluate", namespace="master_reg")
    TrainingJobHooks().on_node_error(
        RuntimeError("x"), other, catalog, {"master_reg.trained_task": object()}
    )
    skipped = node(lambda *args: None, ["a"], "c", name="train", namespace="master_reg")
    TrainingJobHooks().on_node_error(
        RuntimeError("x"),
        skipped,
        catalog,
        {"master_reg.training_job": started("master_reg", "skipped")},
    )
    assert catalog.saved == {}
