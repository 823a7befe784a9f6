"""`mixai-registry`: changes the registry and rebuilds the bundle, or refuses clearly."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from mixai_inference.bundle import read_manifest, sha256_file
from mixai_ml.datasets import AppTableDataset
from mixai_ml.db.engine import dispose_engines
from mixai_ml.export import registry
from mixai_ml.export.cli import main
from mixai_ml.paths import project_root, set_project_root

PROJECT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder with the real configuration, two master_reg versions (v1 active)."""
    shutil.copytree(PROJECT / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    (tmp_path / "conf" / "local").mkdir()
    monkeypatch.setenv("MIXAI_DB_URL", f"sqlite:///{tmp_path / 'mixai.db'}")
    previous = project_root()
    set_project_root(tmp_path)
    rows = []
    for minute, version in enumerate(("v1", "v2")):
        path = tmp_path / "store" / f"{version}.onnx"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(version.encode())
        model = registry.ExportedModel("master_reg", version, str(path), sha256_file(path), {})
        rows.append(registry.candidate_row(model, NOW + pd.Timedelta(minutes=minute)))
    table = registry.promote(pd.DataFrame(rows), "master_reg", "v1", NOW)
    AppTableDataset(table_name="model_registry", credentials={"con": None}).save(table)
    yield tmp_path
    set_project_root(previous)
    dispose_engines()


def states(project: Path) -> dict[str, tuple[str, float]]:
    table = AppTableDataset(table_name="model_registry", credentials={"con": None}).load()
    return {row.version: (row.status, row.rollout_pct) for row in table.itertuples()}


def test_promote_rollout_rollback_rebuild_the_bundle(project: Path) -> None:
    bundle = project / "data/06_models/bundle"

    assert main(["promote", "master_reg", "v2", "--rollout", "10"]) == 0
    assert states(project) == {"v1": ("retired", 0.0), "v2": ("active", 10.0)}
    manifest = read_manifest(bundle)
    assert manifest.tasks["master_reg"].active_version == "v2"
    assert manifest.tasks["master_reg"].models["v2"].rollout_pct == 10.0

    assert main(["rollout", "master_reg", "50"]) == 0
    assert read_manifest(bundle).tasks["master_reg"].models["v2"].rollout_pct == 50.0

    assert main(["rollback", "master_reg"]) == 0
    assert states(project) == {"v1": ("active", 100.0), "v2": ("retired", 0.0)}
    assert read_manifest(bundle).tasks["master_reg"].active_version == "v1"


def test_bad_requests_change_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = states(project)
    assert main(["promote", "master_reg", "v9"]) == 2
    assert "no registered version 'v9'" in capsys.readouterr().err
    assert main(["rollout", "master_reg", "150"]) == 2
    assert main(["rollback", "master_reg"]) == 2
    (project / "store/v1.onnx").write_bytes(b"tampered")
    assert main(["rollout", "master_reg", "20"]) == 2
    assert "no longer matches its registered sha256" in capsys.readouterr().err
    assert states(project) == before
    assert not (project / "data/06_models/bundle").exists()
