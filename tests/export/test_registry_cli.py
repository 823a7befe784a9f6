"""`mixai-registry`: changes the registry and rebuilds the bundle of the project it runs in,
or refuses clearly."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from mixai_inference.bundle import read_manifest
from mixai_ml.datasets import AppTableDataset
from mixai_ml.export.cli import main
from project_copy import copy_project, kedro_in_this_process, registry_table, seed_registry

NOW = datetime(2026, 6, 1, tzinfo=UTC)
BUNDLE = Path("data/06_models/bundle")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project copy with two master_reg versions in its store (v1 active), entered."""
    root = copy_project(tmp_path / "first")
    monkeypatch.delenv("MIXAI_DB_URL", raising=False)
    seed_registry(root, "master_reg", ["v1", "v2"], "v1", NOW)
    monkeypatch.chdir(root)
    with kedro_in_this_process():
        yield root


def states(project: Path) -> dict[str, tuple[str, float]]:
    table = registry_table(project).load()
    return {row.version: (row.status, row.rollout_pct) for row in table.itertuples()}


@pytest.mark.slow
def test_promote_rollout_rollback_rebuild_the_bundle(project: Path) -> None:
    bundle = project / BUNDLE

    assert main(["promote", "master_reg", "v2", "--rollout", "10"]) == 0
    assert states(project) == {"v1": ("retired", 0.0), "v2": ("active", 10.0)}
    manifest = read_manifest(bundle)
    assert manifest.tasks["master_reg"].active_version == "v2"
    assert manifest.tasks["master_reg"].models["v2"].rollout_pct == 10.0
    assert (bundle / "master_reg-v2.onnx").read_bytes() == b"v2"

    assert main(["rollout", "master_reg", "50"]) == 0
    assert read_manifest(bundle).tasks["master_reg"].models["v2"].rollout_pct == 50.0

    assert main(["rollback", "master_reg"]) == 0
    assert states(project) == {"v1": ("active", 100.0), "v2": ("retired", 0.0)}
    assert read_manifest(bundle).tasks["master_reg"].active_version == "v1"


def test_a_second_copy_changes_only_its_own_registry_and_bundle(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bug of a CLI bound to the checkout it was installed from: not any more."""
    assert main(["promote", "master_reg", "v2"]) == 0
    first_bundle = (project / BUNDLE / "manifest.json").read_bytes()
    second = Path(shutil.copytree(project, tmp_path / "second"))

    monkeypatch.chdir(second / "data")  # anywhere inside the project
    assert main(["rollout", "master_reg", "30"]) == 0
    assert read_manifest(second / BUNDLE).tasks["master_reg"].models["v2"].rollout_pct == 30.0
    assert states(second)["v2"] == ("active", 30.0)
    assert (project / BUNDLE / "manifest.json").read_bytes() == first_bundle
    assert states(project)["v2"] == ("active", 100.0)

    monkeypatch.chdir(tmp_path)
    assert main(["--project", str(project), "rollout", "master_reg", "70"]) == 0
    assert states(project)["v2"] == ("active", 70.0)
    assert states(second)["v2"] == ("active", 30.0)


def test_bad_requests_change_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = states(project)
    assert main(["promote", "master_reg", "v9"]) == 2
    assert "no registered version 'v9'" in capsys.readouterr().err
    assert main(["rollout", "master_reg", "150"]) == 2
    assert main(["rollback", "master_reg"]) == 2
    (project / "data/06_models/registry/master_reg/v1.onnx").write_bytes(b"tampered")
    assert main(["rollout", "master_reg", "20"]) == 2
    assert "no longer matches its registered sha256" in capsys.readouterr().err
    assert states(project) == before
    assert not (project / BUNDLE).exists()


def test_outside_a_project_it_says_where_to_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 2
    assert "is not inside a MIXAI ML project" in capsys.readouterr().err


@pytest.mark.slow
def test_the_bundle_takes_flags_and_experiments_from_the_database_not_the_shell(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old bug: run from a shell without ENABLE_CPU_ML, the CLI wrote
    ``enable_cpu_ml=false`` into the bundle. Now the database's flags and running
    experiments are shipped, whatever the shell says."""
    database = str(project / "data" / "mixai.db")

    def table(name: str) -> AppTableDataset:
        return AppTableDataset(
            table_name=name, credentials={"con": None}, filepath=database, write_mode="upsert"
        )

    table("ml_feature_flags").save(
        pd.DataFrame([{"flag": "enable_cpu_ml", "enabled": True, "updated_at": NOW}])
    )
    experiment = {
        "experiment_id": "canary",
        "task": "master_reg",
        "variants": '{"control": "active", "treatment": "candidate"}',
        "weights": '{"control": 9, "treatment": 1}',
        "coverage": 0.5,
        "status": "running",
    }
    stopped = {**experiment, "experiment_id": "old", "status": "stopped"}
    table("ab_experiments").save(pd.DataFrame([experiment, stopped]))
    monkeypatch.setenv("ENABLE_CPU_ML", "false")  # the operator's shell says nothing that counts

    assert main(["rollout", "master_reg", "50"]) == 0
    manifest = read_manifest(project / BUNDLE)
    assert manifest.flags["enable_cpu_ml"] is True
    assert list(manifest.experiments) == ["canary"]
    assert dict(manifest.experiments["canary"].variants) == {"control": "v1", "treatment": "v2"}
    assert manifest.experiments["canary"].coverage == 0.5
    # the previous active version stays shipped after a promotion: a rollback in the
    # database alone is served without a new bundle
    assert main(["promote", "master_reg", "v2"]) == 0
    assert set(read_manifest(project / BUNDLE).tasks["master_reg"].models) == {"v1", "v2"}
