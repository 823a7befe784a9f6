"""Experiment tracking: off by default, one switch turns it on, and a run logs what it should."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
from mlflow import MlflowClient

from mixai_ml import settings
from mixai_ml.tracking import (
    MLFLOW_PLUGIN,
    SWITCH,
    MlflowTrackingHooks,
    local_store_uri,
    loss_history,
    scalar_metrics,
    tracking_enabled,
    training_metrics,
)
from mixai_ml.training.artifact import TrainedTask
from tiny_world import TINY

from .workflow_support import KEDRO, cli_params, network_attempts, run_offline


def test_the_switch_reads_common_spellings() -> None:
    assert not tracking_enabled({})
    assert not tracking_enabled({SWITCH: "0"})
    assert not tracking_enabled({SWITCH: ""})
    assert tracking_enabled({SWITCH: "1"})
    assert tracking_enabled({SWITCH: " True "})


@pytest.mark.skipif(tracking_enabled(), reason="the developer switched tracking on")
def test_tracking_is_off_by_default() -> None:
    assert settings.DISABLE_HOOKS_FOR_PLUGINS == (MLFLOW_PLUGIN,)
    assert not any(isinstance(hook, MlflowTrackingHooks) for hook in settings.HOOKS)


def test_one_switch_turns_kedro_mlflow_on() -> None:
    code = (
        "from mixai_ml import settings; "
        "print(settings.DISABLE_HOOKS_FOR_PLUGINS, [type(h).__name__ for h in settings.HOOKS])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, SWITCH: "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "() ['TrainingJobHooks', 'MlflowTrackingHooks']"


def test_kedro_mlflow_is_disabled_by_its_distribution_name() -> None:
    """``DISABLE_HOOKS_FOR_PLUGINS`` matches the name pluggy reports for the plugin's hooks."""
    from importlib.metadata import distribution

    assert distribution(MLFLOW_PLUGIN).metadata["Name"] == MLFLOW_PLUGIN


def test_scalar_metrics_flatten_numbers_only() -> None:
    evaluation = {
        "status": "succeeded",
        "n_test": 26,
        "model": {
            "mae_norm": 0.15,
            "per_parameter": {"comp_ratio": {"mae": 0.4, "r2": float("nan")}},
            "confusion_matrix": [[1, 2], [3, 4]],
            "calibrated": True,
        },
    }
    assert scalar_metrics(evaluation, "master_reg") == {
        "master_reg.n_test": 26.0,
        "master_reg.model.mae_norm": 0.15,
        "master_reg.model.per_parameter.comp_ratio.mae": 0.4,
    }


def test_training_metrics_and_loss_history() -> None:
    info = {
        "n_samples": {"train": 30, "validation": 10, "test": 12},
        "governance": {"no_consent": 5, "n_samples": 52},
        "history": {
            "train_loss": [1.0, 0.5],
            "validation_loss": [1.2, float("inf")],
            "best_epoch": 0,
        },
    }
    assert training_metrics("preset_cls", info) == {
        "preset_cls.n_samples.train": 30.0,
        "preset_cls.n_samples.validation": 10.0,
        "preset_cls.n_samples.test": 12.0,
        "preset_cls.governance.no_consent": 5.0,
        "preset_cls.governance.n_samples": 52.0,
        "preset_cls.best_epoch": 0.0,
    }
    assert list(loss_history("preset_cls", info["history"])) == [
        ("preset_cls.train_loss", 1.0, 0),
        ("preset_cls.train_loss", 0.5, 1),
        ("preset_cls.validation_loss", 1.2, 0),
    ]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local MLflow store in ``tmp_path``, and an experiment made current in it."""
    uri, previous = local_store_uri(tmp_path), mlflow.get_tracking_uri()
    (tmp_path / "mlruns").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment(
        "hooks", artifact_location=(tmp_path / "mlruns" / "artifacts").as_uri()
    )
    mlflow.set_experiment(experiment_id=experiment)
    yield uri
    mlflow.end_run()
    mlflow.set_tracking_uri(previous)


def test_hooks_log_a_training_run(store: str) -> None:
    hooks = MlflowTrackingHooks()
    trained = TrainedTask(
        "master_reg",
        "succeeded",
        version="20260101000000-abcdef12",
        info={
            "n_samples": {"train": 40},
            "history": {"train_loss": [3.0, 2.0, 1.5], "validation_loss": [3.5, 2.5, 2.6]},
        },
    )
    evaluation = {"task": "master_reg", "status": "succeeded", "model": {"mae_norm": 0.12}}
    onnx_bytes = b"\x08\x09not really a model"
    with mlflow.start_run() as run:
        hooks.after_dataset_saved("master_reg.trained_task", trained, node=None)
        hooks.after_dataset_saved("master_reg.task_evaluation", evaluation, node=None)
        hooks.after_dataset_saved(
            "master_reg.onnx_store", {f"master_reg/{trained.version}.onnx": onnx_bytes}, None
        )
        hooks.after_dataset_saved("evaluation_report", "# Evaluation\n", node=None)
        hooks.after_dataset_saved("features_report", "not logged", node=None)
    client = MlflowClient(store)
    logged = client.get_run(run.info.run_id).data
    assert logged.metrics == {
        "master_reg.n_samples.train": 40.0,
        "master_reg.model.mae_norm": 0.12,
        "master_reg.train_loss": 1.5,
        "master_reg.validation_loss": 2.6,
    }
    assert logged.tags["master_reg.version"] == trained.version
    curve = client.get_metric_history(run.info.run_id, "master_reg.validation_loss")
    assert [(point.step, point.value) for point in curve] == [(0, 3.5), (1, 2.5), (2, 2.6)]
    onnx = client.download_artifacts(run.info.run_id, f"onnx/master_reg/{trained.version}.onnx")
    assert Path(onnx).read_bytes() == onnx_bytes
    assert [item.path for item in client.list_artifacts(run.info.run_id)] == [
        "evaluation_report.md",
        "onnx",
    ]


def test_hooks_log_nothing_without_an_active_run(store: str) -> None:
    MlflowTrackingHooks().after_dataset_saved("evaluation_report", "# report", node=None)
    assert mlflow.active_run() is None
    assert (
        MlflowClient(store).search_runs([mlflow.get_experiment_by_name("hooks").experiment_id])
        == []
    )


def test_the_store_defaults_to_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # so that monkeypatch restores it afterwards
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    for name in "abc":
        (tmp_path / name).mkdir()
    hooks = MlflowTrackingHooks()
    hooks.after_context_created(SimpleNamespace(project_path=tmp_path / "a"))
    assert (tmp_path / "a" / "mlruns").is_dir()
    assert mlflow.environment_variables.MLFLOW_TRACKING_URI.get() == local_store_uri(tmp_path / "a")
    # a second session of another project moves the default along; the user's own URI stays
    hooks.after_context_created(SimpleNamespace(project_path=tmp_path / "b"))
    assert mlflow.environment_variables.MLFLOW_TRACKING_URI.get() == local_store_uri(tmp_path / "b")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    hooks.after_context_created(SimpleNamespace(project_path=tmp_path / "c"))
    assert mlflow.environment_variables.MLFLOW_TRACKING_URI.get() == "http://tracking.example:5000"
    assert not (tmp_path / "c" / "mlruns").exists()


@pytest.mark.slow
def test_a_tracked_retraining_logs_params_metrics_and_onnx(
    tiny_project: Path, tmp_path: Path
) -> None:
    """``MIXAI_MLFLOW=1 kedro run`` of one task's training, evaluation and export, offline,
    leaves one finished MLflow run in the project's mlruns/ with what the files on disk say."""
    assert not (tiny_project / "mlruns").exists(), "tracking must be off by default"
    project = tmp_path / "project"
    shutil.copytree(
        tiny_project, project, ignore=shutil.ignore_patterns("audio", "build", ".viz", "mlruns")
    )
    params = {key: TINY[key] for key in ("training", "master_reg", "evaluation")}
    command = [str(KEDRO), "run", "--pipelines=training,evaluation,export"]
    command += ["--namespaces=master_reg", f"--params={cli_params(params)}"]
    run_offline(command, cwd=project, guard=tmp_path / "guard", MIXAI_MLFLOW="1")
    assert network_attempts(tmp_path / "guard") == []

    client = MlflowClient(local_store_uri(project))
    experiment = client.get_experiment_by_name("mixai_ml")
    assert experiment.artifact_location == (project / "mlruns" / "artifacts").as_uri()
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    # parameters: every parameter the nodes read, flattened
    assert run.data.params["master_reg.model.fit.max_epochs"] == "60"
    assert run.data.params["training.min_samples"] == "10"
    assert run.data.params["master_reg.model.baseline.estimator"] == "ridge"
    # metrics: the evaluation on disk, and the learning curve of the trained task
    evaluation = json.loads(
        (project / "data/08_reporting/evaluation/master_reg_evaluation.json").read_text()
    )
    assert run.data.metrics["master_reg.model.mae_norm"] == pytest.approx(
        evaluation["model"]["mae_norm"], rel=1e-12
    )
    assert run.data.metrics["master_reg.rules.mae_norm"] == pytest.approx(
        evaluation["rules"]["mae_norm"], rel=1e-12
    )
    record = json.loads((project / "data/06_models/master_reg/trained_task.json").read_text())
    curve = client.get_metric_history(run.info.run_id, "master_reg.validation_loss")
    assert [point.value for point in curve] == pytest.approx(
        record["info"]["history"]["validation_loss"]
    )
    assert run.data.tags["master_reg.version"] == record["version"]
    # the ONNX file, byte for byte the one in the model store
    version = record["version"]
    logged = client.download_artifacts(run.info.run_id, f"onnx/master_reg/{version}.onnx")
    stored = project / "data/06_models/registry/master_reg" / f"{version}.onnx"
    assert hashlib.sha256(Path(logged).read_bytes()).digest() == (
        hashlib.sha256(stored.read_bytes()).digest()
    )
    assert len(list((project / "mlruns" / "artifacts").rglob(f"{version}.onnx"))) == 1
    # no user or job id anywhere in the store: the purge has nothing to remove there
    world_id = re.compile(rb"(?<![A-Za-z0-9])[UJ][0-9]{6}(?![A-Za-z0-9])")
    with sqlite3.connect(project / "mlruns" / "mlflow.db") as connection:
        dump = "\n".join(connection.iterdump()).encode()
    assert world_id.findall(dump) == []
    for path in (project / "mlruns" / "artifacts").rglob("*"):
        assert not path.is_file() or world_id.findall(path.read_bytes()) == [], path
