"""The metrics sink: bounded ring buffer, thread safety, JSONL in the model_metrics schema."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from mixai_inference.metrics import (
    ENV_JSONL_PATH,
    MODEL_METRICS_COLUMNS,
    MetricRecord,
    MetricsSink,
    expand_entries,
    read_metrics_jsonl,
)

T0 = 1_736_478_000.25  # 2025-01-10T03:00:00.250000+00:00


def record(i: int = 0, **changes: object) -> MetricRecord:
    fields: dict[str, object] = {
        "recorded_at": T0 + i,
        "task": "master_reg",
        "model_version": "v1",
        "variant": "treatment",
        "source": "ml",
        "latency_ms": 0.05,
        "ok": True,
        "error": None,
        "user_id": f"u{i}",
        "job_id": f"j{i}",
        "prediction": MappingProxyType({"target_lufs": -14.0}),
    }
    fields.update(changes)
    return MetricRecord(**fields)  # type: ignore[arg-type]


def test_row_follows_the_model_metrics_schema() -> None:
    row = record(0, ok=False, error="runtime_error", source="rules").to_row()
    assert tuple(row) == MODEL_METRICS_COLUMNS
    assert row["recorded_at"] == "2025-01-10T03:00:00.250000+00:00"
    assert datetime.fromisoformat(row["recorded_at"]) == datetime.fromtimestamp(T0, UTC)
    assert json.loads(row["prediction"]) == {"target_lufs": -14.0}
    assert (row["ok"], row["error"], row["source"]) == (False, "runtime_error", "rules")
    assert record(prediction=None).to_row()["prediction"] is None


def test_columns_are_the_application_schemas() -> None:
    """The sink writes table columns in table order; the ones it leaves out may be NULL."""
    schema = pytest.importorskip("mixai_ml.db.schema")
    table = schema.model_metrics.columns
    assert [c.name for c in table if c.name in MODEL_METRICS_COLUMNS] == list(MODEL_METRICS_COLUMNS)
    assert all(c.nullable for c in table if c.name not in MODEL_METRICS_COLUMNS)


def test_ring_buffer_keeps_the_latest_records() -> None:
    sink = MetricsSink(capacity=3)
    for i in range(10):
        sink.record(record(i))
    assert [r.user_id for r in sink.records()] == ["u7", "u8", "u9"]
    assert sink.total == 10
    with pytest.raises(ValueError, match="capacity"):
        MetricsSink(capacity=-1)


def test_a_sink_without_ring_buffer_passes_every_call_to_its_writer() -> None:
    received: list[Any] = []

    class Collect:
        def add(self, entry: Any) -> None:
            received.append(entry)

        def flush(self) -> int:
            return 0

        def close(self) -> None:
            pass

    sink = MetricsSink(capacity=0, writer=Collect())
    for i in range(5):
        sink.record(record(i))
    assert sink.records() == []
    assert sink.total == 5
    users = [r.user_id for r in expand_entries(received)]
    assert users == ["u0", "u1", "u2", "u3", "u4"]


def test_concurrent_recording_loses_nothing(tmp_path: Path) -> None:
    sink = MetricsSink(capacity=100, jsonl_path=tmp_path / "m.jsonl", flush_interval_s=0.01)

    def work(t: int) -> None:
        for i in range(1000):
            sink.record(record(i, job_id=f"t{t}-{i}"))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sink.close()
    assert sink.total == 8000
    assert len(sink.records()) == 100
    rows = list(read_metrics_jsonl(tmp_path / "m.jsonl"))
    assert len(rows) == 8000
    assert len({row["job_id"] for row in rows}) == 8000


def test_background_thread_writes_without_an_explicit_flush(tmp_path: Path) -> None:
    sink = MetricsSink(jsonl_path=tmp_path / "m.jsonl", flush_interval_s=0.02)
    sink.record(record(1))
    path, rows = tmp_path / "m.jsonl", []
    deadline = time.monotonic() + 5
    while not rows and time.monotonic() < deadline:
        time.sleep(0.01)
        rows = list(read_metrics_jsonl(path)) if path.exists() else []
    assert [row["user_id"] for row in rows] == ["u1"]
    sink.close()


def test_from_env_writes_to_the_configured_file(tmp_path: Path) -> None:
    sink = MetricsSink.from_env({ENV_JSONL_PATH: str(tmp_path / "sub" / "m.jsonl")})
    sink.record(record(2))
    assert sink.flush() == 1
    sink.close()
    assert next(read_metrics_jsonl(tmp_path / "sub" / "m.jsonl"))["job_id"] == "j2"
    assert MetricsSink.from_env({}).writer is None


def test_an_unwritable_file_drops_records_without_raising(tmp_path: Path) -> None:
    sink = MetricsSink(jsonl_path=tmp_path)  # a folder: appending to it fails
    sink.record(record(0))
    assert sink.flush() == 0
    assert sink.writer is not None
    assert sink.writer.dropped == 1
    sink.close()


def test_reader_skips_a_torn_last_line_but_not_a_corrupt_middle(tmp_path: Path) -> None:
    good = json.dumps(record(0).to_row())
    (tmp_path / "torn.jsonl").write_text(good + "\n" + good[:20])
    assert len(list(read_metrics_jsonl(tmp_path / "torn.jsonl"))) == 1
    (tmp_path / "bad.jsonl").write_text(good[:20] + "\n" + good + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        list(read_metrics_jsonl(tmp_path / "bad.jsonl"))


def test_documented_recipe_loads_the_file_into_the_table(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    db = pytest.importorskip("mixai_ml.db")
    sink = MetricsSink(jsonl_path=tmp_path / "m.jsonl")
    sink.record(record(0, user_id="007", prediction=None))
    sink.record(record(1, ok=False, error="sha256_mismatch", source="rules"))
    sink.close()
    engine = db.get_engine(f"sqlite:///{tmp_path / 'app.db'}")

    rows = pd.read_json(tmp_path / "m.jsonl", lines=True, dtype=False)
    rows["recorded_at"] = pd.to_datetime(rows["recorded_at"], utc=True, format="ISO8601")
    rows.to_sql("model_metrics", engine, if_exists="append", index=False)

    back = pd.read_sql_table("model_metrics", engine)
    assert list(back["user_id"]) == ["007", "u1"]
    assert list(back["error"].fillna("")) == ["", "sha256_mismatch"]
    assert json.loads(back["prediction"][1]) == {"target_lufs": -14.0}
