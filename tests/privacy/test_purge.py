"""The purge deletes withdrawn users' ML data, keeps legal holds, is idempotent, and audits."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine

from mixai_inference import FEATURE_SCHEMA_VERSION
from mixai_inference.adapters import (
    ADAPTERS_FILE,
    AdapterFile,
    TaskAdapters,
    UserAdapters,
    bundle_adapters,
)
from mixai_inference.bundle import Manifest, read_manifest, sha256_bytes, write_bundle
from mixai_inference.tasks import MASTER_REG, PRESET_CLS
from mixai_ml.datasets import AppTableDataset
from mixai_ml.db import schema
from mixai_ml.privacy import PURGE_DEADLINE, pending_withdrawals, purge_withdrawn_users
from mixai_ml.training.data import build_model_input

T0 = pd.Timestamp("2026-06-01", tz="UTC")


def seed(db_url: str) -> None:
    def save(table: str, frame: pd.DataFrame) -> None:
        AppTableDataset(table_name=table, credentials={"con": db_url}).save(frame)

    save(
        "jobs",
        pd.DataFrame(
            {
                "job_id": ["a1", "g1", "g2", "h1", "k1"],
                "user_id": ["ok", "gone", "gone", "held", "hold_one"],
                "created_at": T0,
                "vocal_path": "v",
                "inst_path": "i",
                "mix_path": "m",
            }
        ),
    )
    save(
        "ml_consent",
        pd.DataFrame(
            {
                "user_id": ["ok", "gone", "held", "hold_one"],
                "consented": [True, False, False, True],
                "updated_at": T0,
                "withdrawn_at": [pd.NaT, T0, T0, T0],
            }
        ),
    )
    save(
        "ml_exclusions",
        pd.DataFrame(
            {
                "exclusion_id": ["e1", "e2", "e3"],
                "user_id": ["gone", "held", None],
                "job_id": [None, None, "k1"],
                "reason": ["withdrawal", "legal_hold", "legal_hold"],
                "note": None,
                "created_at": T0,
            }
        ),
    )
    save(
        "labels",
        pd.DataFrame(
            {
                "job_id": ["a1", "g1", "g1", "g2", "h1", "k1"],
                "task": [
                    "master_reg",
                    "master_reg",
                    "preset_cls",
                    "preset_cls",
                    "preset_cls",
                    "preset_cls",
                ],
                "label": "{}",
                "created_at": T0,
            }
        ),
    )
    features = pd.DataFrame(
        {
            "job_id": ["a1", "g1", "g2", "h1", "k1"],
            "schema_version": FEATURE_SCHEMA_VERSION,
            "extracted_at": T0,
        }
    )
    for name in schema.FEATURE_COLUMNS[:3]:
        features[name] = np.arange(5, dtype=float)
    save("features_store", features)


def table(db_url: str, name: str) -> pd.DataFrame:
    return AppTableDataset(table_name=name, credentials={"con": db_url}).load()


def test_purge_deletes_withdrawn_keeps_holds_and_is_idempotent(db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    derived = tmp_path / "model_input.parquet"
    pd.DataFrame({"job_id": ["a1", "g1", "g2", "h1"], "x": [1.0, 2.0, 3.0, 4.0]}).to_parquet(
        derived
    )
    engine = create_engine(db_url)
    now = datetime(2026, 6, 2, tzinfo=UTC)

    audit = purge_withdrawn_users(engine, [derived], purge_id="p1", now=now)
    again = purge_withdrawn_users(engine, [derived], purge_id="p2", now=now)

    assert sorted(table(db_url, "features_store")["job_id"]) == ["a1", "h1", "k1"]
    assert sorted(table(db_url, "labels")["job_id"]) == ["a1", "h1", "k1"]
    assert pd.read_parquet(derived)["job_id"].tolist() == ["a1", "h1"]
    counts = audit.set_index(["user_id", "table_name"])["rows_deleted"].to_dict()
    assert counts == {
        ("gone", "features_store"): 2,
        ("gone", "labels"): 3,
        ("gone", f"file:{derived.as_posix()}"): 2,
    }
    assert (audit["purge_id"] == "p1").all()
    assert again.empty
    engine.dispose()


def test_pending_withdrawals_are_those_the_purge_has_not_removed_yet(db_url: str) -> None:
    """The console's figure: withdrawn users with data left (legal holds are not pending)."""
    seed(db_url)
    engine = create_engine(db_url)
    now = T0 + pd.Timedelta(hours=30)

    pending = pending_withdrawals(engine, now)

    assert pending["user_id"].tolist() == ["gone"]  # held: legal hold; hold_one: its job held
    assert pending["rows"].tolist() == [5]  # g1, g2 features + 3 labels
    assert pending["age"].iloc[0] == pd.Timedelta(hours=30)
    assert pending["age"].iloc[0] > PURGE_DEADLINE
    assert pending["deadline"].iloc[0] == T0 + PURGE_DEADLINE
    purge_withdrawn_users(engine, [], purge_id="p1", now=now)
    assert pending_withdrawals(engine, now).empty
    engine.dispose()


def test_training_data_read_from_each_database_honours_consent_and_exclusions(
    db_url: str,
) -> None:
    """The governance filter on tables as the database returns them (bools, NULLs, times)."""
    seed(db_url)
    preset = AppTableDataset(table_name="labels", credentials={"con": db_url}, write_mode="upsert")
    preset.save(
        pd.DataFrame(
            {
                "job_id": ["a1", "g1", "h1", "k1"],
                "task": "preset_cls",
                "label": '{"preset": "natural"}',
                "created_at": T0,
            }
        )
    )
    features = table(db_url, "features_store").fillna(
        {name: 0.5 for name in schema.FEATURE_COLUMNS}
    )

    frame, counts = build_model_input(
        "preset_cls",
        features,
        table(db_url, "labels"),
        table(db_url, "jobs"),
        table(db_url, "ml_consent"),
        table(db_url, "ml_exclusions"),
        {"test_fraction": 0.3, "validation_fraction": 0.3, "salt": "s"},
    )

    # a1: consented; g1, h1 (legal hold) and k1 (job on legal hold): their users withdrew
    assert frame["job_id"].tolist() == ["a1"]
    assert counts["withdrawn"] == 3
    assert counts["invalid_label"] == 1  # g2's "{}"
    assert counts["n_samples"] == 1


def test_purge_removes_withdrawn_users_adapters_from_the_bundle(
    db_url: str, tmp_path: Path
) -> None:
    """A withdrawn user's per-user model parameters go; the manifest's sha256 follows; legal
    holds (a held user, a user whose only job is held) keep theirs."""
    seed(db_url)
    users = ("ok", "gone", "held", "hold_one")
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
    engine = create_engine(db_url)
    now = datetime(2026, 6, 2, tzinfo=UTC)

    audit = purge_withdrawn_users(engine, [bundle / ADAPTERS_FILE], purge_id="p1", now=now)
    again = purge_withdrawn_users(engine, [bundle / ADAPTERS_FILE], purge_id="p2", now=now)
    engine.dispose()

    kept, error = bundle_adapters(read_manifest(bundle), bundle)  # sha256 checked
    assert error is None
    assert kept is not None
    assert set(kept.tasks[MASTER_REG].users) == {"ok", "held", "hold_one"}
    assert kept.tasks[PRESET_CLS].users == {}
    place = f"file:{(bundle / ADAPTERS_FILE).as_posix()}"
    assert audit.set_index(["user_id", "table_name"])["rows_deleted"].to_dict() == {
        ("gone", "features_store"): 2,
        ("gone", "labels"): 3,
        ("gone", place): 2,
    }
    assert again.empty
