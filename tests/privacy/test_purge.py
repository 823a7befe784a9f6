"""The purge removes withdrawn users' data from every place, keeps legal holds, is idempotent,
audits one row per user × place, and records its runs and the withdrawals it completed."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from privacy_world import (
    KEPT_JOBS,
    KEPT_USERS,
    PURGED_USERS,
    T0,
    save,
    seed,
    table,
    write_files,
)

from mixai_inference.adapters import (
    ADAPTERS_FILE,
    AdapterFile,
    TaskAdapters,
    UserAdapters,
    bundle_adapters,
)
from mixai_inference.bundle import Manifest, read_manifest, sha256_bytes, write_bundle
from mixai_inference.features import FEATURE_SCHEMA_VERSION
from mixai_inference.tasks import MASTER_REG, PRESET_CLS
from mixai_ml.datasets import AppTableDataset
from mixai_ml.db import get_engine
from mixai_ml.privacy import PurgeIncomplete, PurgeResult, purge_withdrawn_users
from mixai_ml.privacy.files import BundleAdapters, JsonLines, MaskedText, ParquetRows
from mixai_ml.training.data import build_model_input

HOURS_2 = pd.Timedelta(hours=2)


class Clock:
    """A clock that moves one minute per reading."""

    def __init__(self, start: pd.Timestamp) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += pd.Timedelta(minutes=1)
        return self.now.to_pydatetime()


def places(files: dict[str, Path]) -> list[ParquetRows | JsonLines | MaskedText]:
    return [
        ParquetRows("model_input", (files["model_input"],)),
        ParquetRows("users", (files["users"],)),
        JsonLines("journal", (files["journal"],)),
        MaskedText("report", (files["report"],)),
    ]


def run(db_url: str, files: dict[str, Path], purge_id: str, clock: Clock) -> PurgeResult:
    return purge_withdrawn_users(
        get_engine(db_url), places(files), purge_id=purge_id, abandoned_after=HOURS_2, clock=clock
    )


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> tuple[str, dict[str, Path]]:
    seed(db_url)
    return db_url, write_files(tmp_path / "data")


EXPECTED_AUDIT = {
    ("gone", "features_store"): 2,
    ("hold_one", "features_store"): 1,
    ("gone", "feature_failures"): 1,
    ("gone", "labels"): 3,
    ("hold_one", "labels"): 1,
    ("gone", "model_metrics"): 2,
    ("hold_one", "model_metrics"): 2,  # k2's row and the one without a job; k1 is held
    ("refused", "model_metrics"): 1,
    ("gone", "ab_test_assignments"): 1,
    ("hold_one", "ab_test_assignments"): 1,
    ("refused", "ab_test_assignments"): 1,
    ("gone", "ab_test_metrics"): 2,
    ("hold_one", "ab_test_metrics"): 2,
    ("refused", "ab_test_metrics"): 2,
    ("gone", "file:model_input"): 2,
    ("hold_one", "file:model_input"): 1,
    ("gone", "file:users"): 1,
    ("hold_one", "file:users"): 1,
    ("refused", "file:users"): 1,
    ("gone", "file:journal"): 3,  # g1, g2 and the torn line naming gone
    ("hold_one", "file:journal"): 1,
    ("refused", "file:journal"): 1,
    ("gone", "file:report"): 2,  # `g2` and jobs/g2/
}


def test_every_place_is_purged_holds_kept_and_audited(world: tuple[str, dict[str, Path]]) -> None:
    db_url, files = world
    result = run(db_url, files, "p1", Clock(T0 + pd.Timedelta(hours=3)))

    for name in ("features_store", "labels"):
        assert set(table(db_url, name)["job_id"]) == KEPT_JOBS
    assert table(db_url, "feature_failures").empty
    served = table(db_url, "model_metrics")
    assert sorted(zip(served["user_id"], served["job_id"], strict=True)) == [
        ("held", "h1"),
        ("hold_one", "k1"),
        ("ok", "a1"),
    ]
    for name in ("ab_test_assignments", "ab_test_metrics"):
        assert set(table(db_url, name)["user_id"]) == KEPT_USERS
    assert set(pd.read_parquet(files["model_input"])["job_id"]) == KEPT_JOBS
    assert set(pd.read_parquet(files["users"])["user_id"]) == KEPT_USERS
    journal = files["journal"].read_text().splitlines()
    assert [line[:40] for line in journal] == [
        '{"user_id": "ok", "job_id": "a1", "laten',
        '{"user_id": "held", "job_id": "h1", "lat',
        '{"user_id": "hold_one", "job_id": "k1", ',
    ]
    assert files["report"].read_text() == (
        "# Features\n\n- `##` track: unreadable (jobs/##/mix.flac)\n- `a1`: fine\n- `g22`: fine\n"
    )

    audit = result.audit.set_index(["user_id", "table_name"])["rows_deleted"].to_dict()
    assert audit == EXPECTED_AUDIT
    stored = table(db_url, "purge_audit")
    assert len(stored) == len(EXPECTED_AUDIT)
    assert set(stored["purge_id"]) == {"p1"}
    assert result.withdrawals_completed == 3
    assert result.withdrawals_held == 1
    summary = result.summary()
    assert summary["places"]["labels"] == {"users": 2, "rows": 4}
    assert "gone" not in str(summary)  # a report without user ids


def test_a_second_run_changes_nothing_and_records_itself(
    world: tuple[str, dict[str, Path]],
) -> None:
    db_url, files = world
    clock = Clock(T0 + pd.Timedelta(hours=3))
    run(db_url, files, "p1", clock)
    contents = {name: path.read_bytes() for name, path in files.items()}

    again = run(db_url, files, "p2", clock)

    assert again.audit.empty
    assert again.withdrawals_completed == 0
    assert {name: path.read_bytes() for name, path in files.items()} == contents
    runs = table(db_url, "purge_runs").set_index("purge_id")
    assert runs["status"].to_dict() == {"p1": "succeeded", "p2": "succeeded"}
    assert runs.loc["p1", "rows_deleted"] == sum(EXPECTED_AUDIT.values())
    assert runs.loc["p1", "withdrawals_completed"] == 3
    done = table(db_url, "purge_withdrawals").set_index("user_id")
    assert set(done.index) == PURGED_USERS
    assert (done["purge_id"] == "p1").all()
    assert done.loc["refused", "withdrawn_at"] == T0 - pd.Timedelta(days=1)  # its updated_at


def test_purged_assignments_are_counted_without_user_ids(
    world: tuple[str, dict[str, Path]],
) -> None:
    db_url, files = world
    run(db_url, files, "p1", Clock(T0))
    counted = table(db_url, "ab_purged_assignments")
    assert counted.to_dict("records") == [
        {
            "experiment_id": "exp",
            "variant": "treatment",
            "assigned_day": "2026-05-30",
            "n_purged": 2,  # gone and hold_one; refused was assigned after refusing
        }
    ]


def test_a_failed_place_fails_the_run_and_leaves_withdrawals_pending(
    world: tuple[str, dict[str, Path]],
) -> None:
    db_url, files = world
    files["model_input"].write_text("not parquet")
    clock = Clock(T0)
    with pytest.raises(PurgeIncomplete, match=r"file:model_input: .*[Pp]arquet"):
        run(db_url, files, "p1", clock)
    runs = table(db_url, "purge_runs")
    assert runs["status"].tolist() == ["failed"]
    assert "arquet" in runs["error"].iloc[0]
    assert table(db_url, "purge_withdrawals").empty
    assert set(table(db_url, "labels")["job_id"]) == KEPT_JOBS  # the tables were cleaned
    # ... and the places after the failed one, audited
    assert set(pd.read_parquet(files["users"])["user_id"]) == KEPT_USERS
    audited = set(table(db_url, "purge_audit")["table_name"])
    assert {"file:users", "file:journal", "file:report"} <= audited
    assert "file:model_input" not in audited

    pd.DataFrame({"job_id": ["a1", "g1"]}).to_parquet(files["model_input"])  # repaired
    run(db_url, files, "p2", clock)
    assert pd.read_parquet(files["model_input"])["job_id"].tolist() == ["a1"]
    assert set(table(db_url, "purge_withdrawals")["user_id"]) == PURGED_USERS


def test_a_run_that_died_is_marked_failed_by_the_next(world: tuple[str, dict[str, Path]]) -> None:
    db_url, files = world
    save(
        db_url,
        "purge_runs",
        pd.DataFrame(
            {"purge_id": ["dead", "recent"], "started_at": [T0, T0 + pd.Timedelta(hours=2)]}
        ).assign(status="running"),
    )
    run(db_url, files, "p1", Clock(T0 + pd.Timedelta(hours=2, minutes=30)))
    runs = table(db_url, "purge_runs").set_index("purge_id")
    assert runs["status"].to_dict() == {"dead": "failed", "recent": "running", "p1": "succeeded"}
    assert "abandoned" in runs.loc["dead", "error"]


def test_training_data_read_from_each_database_honours_consent_and_exclusions(
    db_url: str,
) -> None:
    """The governance filter on tables as the database returns them (bools, NULLs, times)."""
    seed(db_url)
    preset = pd.DataFrame(
        {
            "job_id": ["a1", "g1", "h1", "k1"],
            "task": "preset_cls",
            "label": '{"preset": "natural"}',
            "created_at": T0,
        }
    )
    AppTableDataset(table_name="labels", credentials={"con": db_url}, write_mode="upsert").save(
        preset
    )
    frame, counts = build_model_input(
        "preset_cls",
        table(db_url, "features_store").fillna(0.5),
        table(db_url, "labels"),
        table(db_url, "jobs"),
        table(db_url, "ml_consent"),
        table(db_url, "ml_exclusions"),
        {"test_fraction": 0.3, "validation_fraction": 0.3, "salt": "s"},
    )
    # a1: consented; g1, h1 (legal hold) and k1 (job on legal hold): their users withdrew
    assert frame["job_id"].tolist() == ["a1"]
    assert counts["withdrawn"] == 3
    assert counts["invalid_label"] == 2  # g2's and k2's "{}"
    assert counts["n_samples"] == 1


def test_withdrawn_users_adapters_leave_the_bundle(db_url: str, tmp_path: Path) -> None:
    """Per-user model parameters go with the user; the manifest's sha256 follows; a user under
    a legal hold keeps theirs."""
    seed(db_url)
    users = ("ok", "gone", "held", "hold_one", "refused")
    store = UserAdapters(
        {
            MASTER_REG: TaskAdapters("v1", {user: (0.5,) * 8 for user in users}),
            PRESET_CLS: TaskAdapters("v1", {"gone": (0.0,) * 6}),
        }
    )
    content = store.to_bytes()
    bundle = tmp_path / "bundle"
    manifest = Manifest(
        feature_schema_version=FEATURE_SCHEMA_VERSION,
        tasks={},
        user_adapters=AdapterFile(ADAPTERS_FILE, sha256_bytes(content)),
    )
    write_bundle(bundle, manifest, {ADAPTERS_FILE: content})
    place = [BundleAdapters("user_adapters", (bundle / ADAPTERS_FILE,))]
    engine = get_engine(db_url)

    first = purge_withdrawn_users(engine, place, purge_id="p1", abandoned_after=HOURS_2)
    again = purge_withdrawn_users(engine, place, purge_id="p2", abandoned_after=HOURS_2)

    kept, error = bundle_adapters(read_manifest(bundle), bundle)  # sha256 checked
    assert error is None
    assert kept is not None
    assert set(kept.tasks[MASTER_REG].users) == {"ok", "held"}
    assert kept.tasks[PRESET_CLS].users == {}
    audit = first.audit[first.audit["table_name"] == "file:user_adapters"]
    assert audit.set_index("user_id")["rows_deleted"].to_dict() == {
        "gone": 2,
        "hold_one": 1,
        "refused": 1,
    }
    assert again.audit.empty
