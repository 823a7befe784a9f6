"""The Kedro datasets over the application database."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.io.core import AbstractDataset, DatasetError
from sqlalchemy import inspect

from mixai_ml.datasets import AppQueryDataset, AppTableDataset, DatabaseDataset

PROJECT = Path(__file__).resolve().parents[2]


def _consent(users: list[str], consented: bool) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": users,
            "consented": consented,
            "updated_at": pd.Timestamp("2026-03-01 12:00", tz="UTC"),
            "withdrawn_at": pd.NaT,
        }
    )


def test_upsert_replaces_matching_keys_and_keeps_the_rest(db_url: str) -> None:
    dataset = AppTableDataset(
        table_name="ml_consent", credentials={"con": db_url}, write_mode="upsert"
    )
    dataset.save(_consent(["a", "b"], consented=True))
    dataset.save(_consent(["b", "c"], consented=False))

    loaded = dataset.load().sort_values("user_id").reset_index(drop=True)

    assert loaded["user_id"].tolist() == ["a", "b", "c"]
    assert loaded["consented"].astype(bool).tolist() == [True, False, False]
    assert str(loaded["updated_at"].dt.tz) == "UTC"
    assert loaded["updated_at"].iloc[0] == pd.Timestamp("2026-03-01 12:00", tz="UTC")


def test_upsert_on_a_composite_key(db_url: str) -> None:
    dataset = AppTableDataset(table_name="labels", credentials={"con": db_url}, write_mode="upsert")
    stamp = pd.Timestamp("2026-03-01", tz="UTC")
    first = pd.DataFrame(
        {
            "job_id": ["j1", "j1", "j2"],
            "task": ["master_reg", "preset_cls", "preset_cls"],
            "label": ["{}", '{"preset": "natural"}', '{"preset": "loud_edm"}'],
            "created_at": stamp,
        }
    )
    dataset.save(first)
    dataset.save(first.iloc[[1]].assign(label='{"preset": "bright_pop"}'))

    loaded = dataset.load().set_index(["job_id", "task"])["label"]

    assert len(loaded) == 3
    assert loaded[("j1", "preset_cls")] == '{"preset": "bright_pop"}'
    assert loaded[("j2", "preset_cls")] == '{"preset": "loud_edm"}'


def test_an_upsert_of_many_composite_keys_replaces_exactly_those(db_url: str) -> None:
    """More keys than one statement binds on SQLite; one array per key column on PostgreSQL."""
    dataset = AppTableDataset(table_name="labels", credentials={"con": db_url}, write_mode="upsert")
    stamp = pd.Timestamp("2026-03-01", tz="UTC")
    jobs = [f"j{i:04d}" for i in range(1000)]
    dataset.save(
        pd.DataFrame({"job_id": jobs, "task": "preset_cls", "label": "old"}).assign(
            created_at=stamp
        )
    )
    # 900 of them again, and the same jobs under another task (a key that only half matches)
    again = pd.DataFrame({"job_id": jobs[100:], "task": "preset_cls", "label": "new"})
    other = pd.DataFrame({"job_id": jobs[:50], "task": "master_reg", "label": "other"})
    dataset.save(pd.concat([again, other]).assign(created_at=stamp))

    labels = dataset.load().groupby("label")["job_id"].agg(["count", "min", "max"])

    assert labels.loc["old"].tolist() == [100, "j0000", "j0099"]
    assert labels.loc["new"].tolist() == [900, "j0100", "j0999"]
    assert labels.loc["other"].tolist() == [50, "j0000", "j0049"]


def test_replace_rows_keeps_the_migrated_table(db_url: str) -> None:
    dataset = AppTableDataset(
        table_name="ml_consent", credentials={"con": db_url}, write_mode="replace_rows"
    )
    dataset.save(_consent(["a", "b"], consented=True))
    dataset.save(_consent(["z"], consented=True))

    assert dataset.load()["user_id"].tolist() == ["z"]
    primary_key = inspect(dataset.engine).get_pk_constraint("ml_consent")
    assert primary_key["constrained_columns"] == ["user_id"]


def test_query_dataset_aggregates_in_the_database(db_url: str) -> None:
    AppTableDataset(table_name="ml_consent", credentials={"con": db_url}).save(
        pd.concat([_consent(["a", "b"], consented=True), _consent(["c"], consented=False)])
    )
    query = AppQueryDataset(
        sql="SELECT consented, COUNT(*) AS n, MAX(updated_at) AS latest "
        "FROM ml_consent GROUP BY consented ORDER BY consented",
        credentials={"con": db_url},
        timestamp_columns=["latest"],
    )

    counts = query.load()

    assert counts["n"].tolist() == [1, 2]
    assert counts["latest"].iloc[0] == pd.Timestamp("2026-03-01 12:00", tz="UTC")


def test_database_dataset_gives_a_migrated_engine(sqlite_url: str) -> None:
    engine = DatabaseDataset(credentials={"con": sqlite_url}).load()
    assert "jobs" in inspect(engine).get_table_names()
    with pytest.raises(DatasetError, match="read-only"):
        DatabaseDataset(credentials={"con": sqlite_url}).save(object())  # type: ignore[arg-type]


def test_clear_errors_for_bad_configuration(sqlite_url: str) -> None:
    with pytest.raises(DatasetError, match="unknown table 'job'"):
        AppTableDataset(table_name="job", credentials={"con": sqlite_url})
    with pytest.raises(DatasetError, match="write_mode must be one of"):
        AppTableDataset(table_name="jobs", credentials={"con": sqlite_url}, write_mode="merge")  # type: ignore[arg-type]
    dataset = AppTableDataset(table_name="ml_consent", credentials={"con": sqlite_url})
    with pytest.raises(DatasetError, match=r"has no columns \['colour'\]"):
        dataset.save(_consent(["a"], consented=True).assign(colour="red"))


def test_catalog_entries_of_the_run_time_control_tables(db_url: str) -> None:
    catalog = yaml.safe_load((PROJECT / "conf" / "base" / "catalog.yml").read_text())
    datasets = {
        name: AbstractDataset.from_config(name, {**catalog[name], "credentials": {"con": db_url}})
        for name in ("ml_feature_flags", "ab_experiments", "admin_audit_log")
    }
    stamp = pd.Timestamp("2026-03-01 12:00", tz="UTC")
    flags = pd.DataFrame(
        {"flag": ["enable_cpu_ml"], "enabled": [False], "updated_at": stamp, "updated_by": "ops"}
    )
    datasets["ml_feature_flags"].save(flags)
    datasets["ml_feature_flags"].save(flags.assign(enabled=True))  # upsert on the flag
    experiment = {
        "experiment_id": "exp-1",
        "task": "master_reg",
        "variants": '{"control": "active", "treatment": "candidate"}',
        "weights": '{"control": 50, "treatment": 50}',
        "coverage": 0.5,
        "status": "running",
        "started_at": stamp,
    }
    datasets["ab_experiments"].save(pd.DataFrame([experiment]))
    entry = {"audit_id": "a1", "at": stamp, "actor": "ops", "action": "flag", "before": "{}"}
    datasets["admin_audit_log"].save(pd.DataFrame([entry]))

    loaded = datasets["ml_feature_flags"].load()
    assert loaded[["flag", "enabled"]].to_dict("records") == [
        {"flag": "enable_cpu_ml", "enabled": True}
    ]
    assert datasets["ab_experiments"].load().iloc[0]["started_at"] == stamp
    assert datasets["admin_audit_log"].load().iloc[0]["before"] == "{}"
