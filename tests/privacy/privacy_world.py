"""A small application database where every place holds withdrawn and kept users' data.

Users: ``ok`` consents; ``gone`` withdrew; ``held`` withdrew under a user-level legal hold;
``hold_one`` withdrew with a legal hold on one job (``k1``) of two; ``refused`` said no
(``consented`` false, no ``withdrawn_at``). What stays after a purge: everything of ``ok`` and
``held``, and ``hold_one``'s job ``k1``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mixai_inference import FEATURE_SCHEMA_VERSION
from mixai_ml.datasets import AppTableDataset
from mixai_ml.db import schema

T0 = pd.Timestamp("2026-06-01", tz="UTC")
"""When ``gone``, ``held`` and ``hold_one`` withdrew."""
REFUSED_AT = T0 - pd.Timedelta(days=1)
USERS = {"a1": "ok", "g1": "gone", "g2": "gone", "h1": "held", "k1": "hold_one", "k2": "hold_one"}
USERS["r1"] = "refused"
KEPT_JOBS = {"a1", "h1", "k1"}
KEPT_USERS = {"ok", "held"}
PURGED_USERS = {"gone", "hold_one", "refused"}


def save(db_url: str, table: str, frame: pd.DataFrame) -> None:
    AppTableDataset(table_name=table, credentials={"con": db_url}).save(frame)


def table(db_url: str, name: str) -> pd.DataFrame:
    return AppTableDataset(table_name=name, credentials={"con": db_url}).load()


def seed(db_url: str) -> None:
    """Every table of the world (the A/B experiment ``exp`` started two days before T0)."""
    save(
        db_url,
        "jobs",
        pd.DataFrame(
            {
                "job_id": list(USERS),
                "user_id": list(USERS.values()),
                "created_at": T0 - pd.Timedelta(days=3),
                "vocal_path": "v",
                "inst_path": "i",
                "mix_path": "m",
            }
        ),
    )
    save(
        db_url,
        "ml_consent",
        pd.DataFrame(
            {
                "user_id": ["ok", "gone", "held", "hold_one", "refused"],
                "consented": [True, False, False, True, False],
                "updated_at": [T0, T0, T0, T0, REFUSED_AT],
                "withdrawn_at": [pd.NaT, T0, T0, T0, pd.NaT],
            }
        ),
    )
    save(
        db_url,
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
    labelled = ["a1", "g1", "g1", "g2", "h1", "k1", "k2"]
    tasks = ["master_reg", "master_reg", "preset_cls", "preset_cls", "preset_cls"]
    save(
        db_url,
        "labels",
        pd.DataFrame(
            {
                "job_id": labelled,
                "task": [*tasks, "preset_cls", "preset_cls"],
                "label": "{}",
                "created_at": T0,
            }
        ),
    )
    extracted = ["a1", "g1", "g2", "h1", "k1", "k2"]
    features = pd.DataFrame(
        {"job_id": extracted, "schema_version": FEATURE_SCHEMA_VERSION, "extracted_at": T0}
    )
    for name in schema.FEATURE_COLUMNS[:3]:
        features[name] = np.arange(len(extracted), dtype=float)
    save(db_url, "features_store", features)
    save(
        db_url,
        "feature_failures",
        pd.DataFrame(
            {
                "job_id": ["g2"],
                "schema_version": FEATURE_SCHEMA_VERSION,
                "failed_at": T0,
                "stage": "track",
                "error_class": "AudioError",
                "message": "unreadable",
            }
        ),
    )
    served = [("ok", "a1"), ("gone", "g1"), ("gone", None), ("held", "h1"), ("hold_one", "k1")]
    served += [("hold_one", "k2"), ("hold_one", None), ("refused", "r1")]
    save(
        db_url,
        "model_metrics",
        pd.DataFrame(
            {
                "recorded_at": T0 - pd.Timedelta(days=2),
                "task": "preset_cls",
                "source": "ml",
                "latency_ms": 20.0,
                "ok": True,
                "user_id": [user for user, _ in served],
                "job_id": [job for _, job in served],
                "prediction": '{"preset": "natural"}',
            }
        ),
    )
    in_experiment = ["ok", "gone", "held", "hold_one", "refused"]
    save(
        db_url,
        "ab_test_assignments",
        pd.DataFrame(
            {
                "experiment_id": "exp",
                "user_id": in_experiment,
                "variant": ["control", "treatment", "control", "treatment", "control"],
                # refused was assigned after refusing: not part of the original allocation
                "assigned_at": [T0 - pd.Timedelta(days=2)] * 4 + [T0],
            }
        ),
    )
    save(
        db_url,
        "ab_test_metrics",
        pd.DataFrame(
            {
                "experiment_id": "exp",
                "user_id": in_experiment * 2,
                "metric": "accepted",
                "value": 1.0,
                "recorded_at": T0 - pd.Timedelta(days=1),
            }
        ),
    )


def write_files(folder: Path) -> dict[str, Path]:
    """A Parquet model input, a Parquet file of users, a journal and a report."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "model_input": folder / "model_input.parquet",
        "users": folder / "users.parquet",
        "journal": folder / "journals" / "model_metrics-0001.jsonl",
        "report": folder / "features_report.md",
    }
    rows = pd.DataFrame({"job_id": list(USERS), "user_id": list(USERS.values())})
    rows[rows["job_id"] != "r1"].assign(x=1.0).to_parquet(files["model_input"])
    pd.DataFrame({"user_id": sorted(set(USERS.values())), "taste": 0.5}).to_parquet(files["users"])
    files["journal"].parent.mkdir()
    lines = [
        json.dumps({"user_id": user, "job_id": job, "latency_ms": 3.0}) for job, user in rows.values
    ]
    lines.append('{"user_id": "gone", "job_id": "g1", "lat')  # torn by a crash
    files["journal"].write_text("\n".join(lines))
    files["report"].write_text(
        "# Features\n\n- `g2` track: unreadable (jobs/g2/mix.flac)\n- `a1`: fine\n- `g22`: fine\n"
    )
    return files
