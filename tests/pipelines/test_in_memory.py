"""Each pipeline on an in-memory catalog with ``SequentialRunner``, as in Kedro's starters.

A world small enough to train on in seconds, with labels of known relations, and a fourth
task that exists only here: ``toy_gain``, a regression on two features with its own rule.
Registering its spec is all it takes to train, evaluate, export and serve it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

from mixai_inference import ALIGNMENT_FEATURE_NAMES, FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from mixai_inference.flags import Flags
from mixai_inference.metrics import MetricsSink
from mixai_inference.predictor import Predictor
from mixai_inference.rules import Rules
from mixai_inference.tasks import (
    MASTER_PARAM_RANGES,
    PRESETS,
    TaskSpec,
    register_task,
    task_names,
    task_specs,
    unregister_task,
)
from mixai_ml.datasets import (
    BundleDataset,
    EdgeGraphsDataset,
    ModelStoreDataset,
    TrainedTaskDataset,
)
from mixai_ml.db import schema
from mixai_ml.db.engine import dispose_engines, get_engine
from mixai_ml.pipelines.evaluation.pipeline import create_pipeline as evaluation_pipeline
from mixai_ml.pipelines.export.pipeline import create_pipeline as export_pipeline
from mixai_ml.pipelines.features.pipeline import create_pipeline as features_pipeline
from mixai_ml.pipelines.purge.pipeline import create_pipeline as purge_pipeline
from mixai_ml.pipelines.training.pipeline import create_pipeline as training_pipeline
from mixai_ml.privacy.files import ParquetRows
from mixai_ml.training.data import build_model_input
from mixai_ml.training.runs import train_task

N_USERS, JOBS_PER_USER = 60, 4
T0 = pd.Timestamp("2026-06-01", tz="UTC")
GOLDEN_TIME = datetime(2026, 1, 1, tzinfo=UTC)
LUFS, CREST = "loudness_integrated_lufs", "crest_factor_db"


def _toy_rule(rules: Rules, rows: np.ndarray) -> np.ndarray:
    """Half the loudness gap to -14 LUFS: right in direction, wrong in size."""
    return np.clip(-0.5 * (rows[:, :1] + 14.0), -12.0, 12.0)


TOY = TaskSpec(
    name="toy_gain",
    kind="regression",
    outputs=("gain_db",),
    output_tensor="gain",
    flag="enable_toy_gain",
    primary_metric="mae_norm",
    higher_is_better=False,
    rule=_toy_rule,
    columns=(LUFS, CREST),
    ranges={"gain_db": (-12.0, 12.0)},
)


def toy_gain(lufs: np.ndarray, crest: np.ndarray) -> np.ndarray:
    """The truth the users of this world follow."""
    return np.clip(-0.8 * (lufs + 14.0) + 0.3 * (crest - 12.0), -12.0, 12.0)


@pytest.fixture
def toy_task() -> Iterator[TaskSpec]:
    register_task(TOY)
    try:
        yield TOY
    finally:
        unregister_task(TOY.name)


def world(seed: int = 5) -> dict[str, pd.DataFrame]:
    """``jobs``, ``ml_consent``, ``ml_exclusions``, ``features_store`` and ``labels``:
    every label a known function of the features, plus noise."""
    rng = np.random.default_rng(seed)
    n = N_USERS * JOBS_PER_USER
    job_ids = [f"J{i:04d}" for i in range(n)]
    users = [f"U{i // JOBS_PER_USER:03d}" for i in range(n)]
    features = pd.DataFrame(
        rng.normal(0.0, 1.0, (n, len(FEATURE_NAMES) + len(ALIGNMENT_FEATURE_NAMES))),
        columns=[*FEATURE_NAMES, *ALIGNMENT_FEATURE_NAMES],
    )
    features[LUFS] = rng.uniform(-28.0, -8.0, n)
    features[CREST] = rng.uniform(6.0, 18.0, n)
    features["spectral_centroid_mean"] = rng.uniform(800.0, 5000.0, n)
    features["xcorr_peak_to_sidelobe_ratio"] = rng.uniform(2.0, 25.0, n)
    features.insert(0, "job_id", job_ids)
    features.insert(1, "schema_version", FEATURE_SCHEMA_VERSION)
    features.insert(2, "extracted_at", T0)

    z = (features[LUFS].to_numpy() + 18.0) / 6.0
    mids = np.array([(low + high) / 2 for low, high in MASTER_PARAM_RANGES.values()])
    spans = np.array([high - low for low, high in MASTER_PARAM_RANGES.values()])
    master = mids + 0.2 * spans * np.tanh(z)[:, None] + rng.normal(0, 0.02, (n, 8)) * spans
    lows, highs = (np.array(bound) for bound in zip(*MASTER_PARAM_RANGES.values(), strict=True))
    master = np.clip(master, lows, highs)
    centroid = features["spectral_centroid_mean"].to_numpy()
    preset = np.digitize(centroid, np.quantile(centroid, [1 / 3, 2 / 3]))  # three presets used
    psr = features["xcorr_peak_to_sidelobe_ratio"].to_numpy()
    aligned = psr + rng.normal(0.0, 2.0, n) > 10.0
    gain = toy_gain(features[LUFS].to_numpy(), features[CREST].to_numpy())
    gain = np.clip(gain + rng.normal(0.0, 0.2, n), -12.0, 12.0)
    labels = []
    for i, job in enumerate(job_ids):
        for task, label in (
            (
                "master_reg",
                dict(zip(MASTER_PARAM_RANGES, master[i].round(3).tolist(), strict=True)),
            ),
            ("preset_cls", {"preset": PRESETS[preset[i]]}),
            ("align_conf", {"offset_ms": 0.0, "aligned_ok": bool(aligned[i])}),
            (TOY.name, {"gain_db": round(float(gain[i]), 3)}),
        ):
            labels.append(
                {"job_id": job, "task": task, "label": json.dumps(label), "created_at": T0}
            )
    return {
        "jobs": pd.DataFrame(
            {
                "job_id": job_ids,
                "user_id": users,
                "created_at": T0,
                "vocal_path": [f"jobs/{j}/vocal.flac" for j in job_ids],
                "inst_path": [f"jobs/{j}/inst.flac" for j in job_ids],
                "trimmed_inst_path": None,
                "mix_path": [f"jobs/{j}/mix.flac" for j in job_ids],
            }
        ),
        "ml_consent": pd.DataFrame(
            {
                "user_id": sorted(set(users)),
                "consented": True,
                "updated_at": T0,
                "withdrawn_at": pd.NaT,
            }
        ),
        "ml_exclusions": pd.DataFrame(
            columns=["exclusion_id", "user_id", "job_id", "reason", "note", "created_at"]
        ),
        "features_store": features,
        "labels": pd.DataFrame(labels),
    }


def parameters() -> dict[str, Any]:
    """What ``parameters_*.yml`` give the three pipelines, small and decisive."""
    model = {
        "net": {"hidden": [16], "dropout": 0.0, "seed": 7},
        "fit": {
            "learning_rate": 0.01,
            "weight_decay": 0.0,
            "batch_size": 32,
            "max_epochs": 60,
            "patience": 15,
            "seed": 7,
        },
    }
    baselines = {"regression": "ridge", "classification": "logistic_regression"}
    always = {"min_gain_vs_rules": -10.0, "min_gain_vs_active": -10.0}
    # one evaluation section, as Kedro gives it whole and by sub-section
    evaluation = {
        "calibration_bins": 10,
        "bootstrap": {"n_resamples": 20, "seed": 0},
        "audio": {"max_jobs": 2, "sources": ["model", "rules"]},
        "promotion": {
            "master_reg": always,
            "preset_cls": always,
            "align_conf": {**always, "max_ece": 1.0},
            TOY.name: always,
        },
        "ood": {"max_jobs": 2, "shifts": {}, "n_workers": 1, "top_features": 3},
        "personalization": {"buckets": [0, 1, 2], "returning_from": 2},
        "learning_curve": {
            "enabled": True,
            "sizes": [40],
            "repeats": 1,
            "seed": 0,
            "pretrain": model["fit"],
        },
    }
    params: dict[str, Any] = {
        "params:training.split": {
            "test_fraction": 0.25,
            "validation_fraction": 0.2,
            "salt": "in-memory",
        },
        "params:training.min_samples": 10,
        "params:training.queued": {"run_id": None, "jobs": {}},
        "params:training.reference": {
            "target_false_alarm_rate": 0.05,
            "folds": 5,
            "trim": 0.05,
            "components": {"minor": 24, "major": 8},
        },
        "params:evaluation": evaluation,
        **{f"params:evaluation.{key}": evaluation[key] for key in ("ood", "audio", "promotion")},
        "params:export": {
            "flags": {"enable_cpu_ml": True},
            "edge": conf_parameters("export")["edge"],
            "ood_policy": {},
            "user_adapters": True,
        },
        "params:multitask": {"mix": {key: model[key] for key in ("net", "fit")}},
    }
    for spec in {spec.name: spec for spec in (*task_specs(), TOY)}.values():
        estimator = baselines.get(spec.kind, "logistic_regression")
        params[f"params:{spec.name}.model"] = {**model, "baseline": {"estimator": estimator}}
    return params


def conf_parameters(name: str) -> dict[str, Any]:
    """``conf/base/parameters_<name>.yml`` as Kedro gives it to ``params:<name>``."""
    path = Path(__file__).resolve().parents[2] / "conf" / "base" / f"parameters_{name}.yml"
    return dict(yaml.safe_load(path.read_text("utf-8"))[name])


def in_memory_catalog(data: dict[str, Any], folder: Path) -> DataCatalog:
    """Memory datasets for the data; the model store, the edge graphs and the bundle in
    ``folder``."""
    catalog = DataCatalog({name: MemoryDataset(value) for name, value in data.items()})
    store = ModelStoreDataset(path=str(folder / "store"))
    catalog["model_store"] = store
    for task in task_names():
        catalog[f"{task}.onnx_store"] = store
    catalog["edge_graphs"] = EdgeGraphsDataset(path=str(folder / "edge"))
    catalog["model_bundle"] = BundleDataset(path=str(folder / "bundle"))
    return catalog


@pytest.mark.slow
def test_a_fourth_task_trains_evaluates_ships_and_serves(
    toy_task: TaskSpec, tmp_path: Path
) -> None:
    """The toy task goes through training, evaluation and export like the three others, and
    the predictor serves its model, or its rule when its flag is off."""
    tables = world()
    empty = {
        table.name: pd.DataFrame(columns=[column.name for column in table.columns])
        for table in (schema.model_registry, schema.ml_feature_flags, schema.ab_experiments)
    }
    catalog = in_memory_catalog(
        {
            **tables,
            **parameters(),
            **empty,  # no registry, flags or experiments yet: export.flags decide
            "job_audio_files": {},  # no audio: the audio-domain evaluation renders nothing
            "world_oracle": pd.DataFrame(columns=["job_id", "task", "outputs"]),  # no truth
        },
        tmp_path,
    )
    trained_task = TrainedTaskDataset(path=str(tmp_path / TOY.name))  # kept after the run
    catalog[f"{TOY.name}.trained_task"] = trained_task
    pipeline = training_pipeline() + evaluation_pipeline() + export_pipeline()
    assert f"{TOY.name}.train" in {node.name for node in pipeline.nodes}
    outputs = SequentialRunner().run(pipeline, catalog)

    metrics = outputs["evaluation_metrics"].load()
    assert list(metrics) == list(task_names())
    toy = metrics[TOY.name]
    assert toy["model"]["mae_norm"] < toy["rules"]["mae_norm"] / 2  # it learned the relation
    assert toy["primary_metric"] == "mae_norm"
    report = outputs["evaluation_report"].load()
    assert f"## {TOY.name}" in report
    assert f"![{TOY.name}_parameter_errors.png]({TOY.name}_parameter_errors.png)" in report

    summary = outputs["bundle_summary"].load()
    version = summary[TOY.name]["active_version"]
    trained = trained_task.load()
    assert version == trained.version
    assert trained.input_names == (LUFS, CREST)

    rows = tables["features_store"][list(FEATURE_NAMES)].to_numpy(np.float32)[:5]
    sink = MetricsSink()
    served = Predictor.from_bundle(tmp_path / "bundle", metrics_sink=sink)
    for row in rows:
        answer = served.predict(row, user_id="u1").answers[TOY.name]
        assert answer.provenance.source == "ml"
        assert answer.provenance.model_version == version
        assert answer.ood_score is not None  # its training reference ships with it
        with torch.no_grad():
            inputs = torch.from_numpy(row[[FEATURE_NAMES.index(LUFS), FEATURE_NAMES.index(CREST)]])
            model = float(trained.model(inputs[None, :])[0, 0])
        assert answer.fields["gain_db"] == pytest.approx(np.clip(model, -12, 12), abs=1e-4)
    assert {record.task for record in sink.records()} == {"master_reg", "preset_cls", TOY.name}

    off = Predictor.from_bundle(
        tmp_path / "bundle", flags=Flags(enable_cpu_ml=True, enable_toy_gain=False)
    )
    answer = off.predict(rows[0]).answers[TOY.name]
    assert (answer.provenance.source, answer.provenance.reason) == ("rules", "disabled")
    lufs = float(rows[0][FEATURE_NAMES.index(LUFS)])
    assert answer.fields["gain_db"] == pytest.approx(np.clip(-0.5 * (lufs + 14.0), -12, 12))


def test_training_skips_a_task_below_the_minimum(toy_task: TaskSpec) -> None:
    """``training`` alone, for the toy task only: the gate records the run as skipped."""
    tables = world()
    data = {**tables, **parameters(), "params:training.min_samples": 10_000}
    catalog = DataCatalog({name: MemoryDataset(value) for name, value in data.items()})
    pipeline = training_pipeline().only_nodes_with_namespaces([TOY.name])
    outputs = SequentialRunner().run(pipeline, catalog)
    finished = outputs[f"{TOY.name}.training_job_finished"].load()
    assert finished["status"].tolist() == ["skipped"]
    assert "below ML_MIN_SAMPLES=10000" in finished["reason"].iloc[0]
    assert not outputs[f"{TOY.name}.trained_task"].load().trained


def chords(seed: int, sr: int = 44100, seconds: float = 3.0) -> tuple[np.ndarray, int]:
    """Stereo chords with a little noise: something to extract features from."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    tone = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(110.0, 880.0, 3)) / 4
    stereo = np.stack([tone, np.roll(tone, 50)]) + rng.normal(0.0, 0.01, (2, t.size))
    return stereo.astype(np.float32), sr


def test_features_extracts_new_jobs_and_records_missing_audio() -> None:
    jobs = world()["jobs"].head(3)
    audio = {
        path: (lambda seed=seed: chords(seed))
        for seed, path in enumerate([*jobs["mix_path"], *jobs["vocal_path"], *jobs["inst_path"]])
        if path != jobs["vocal_path"].iloc[2]  # one job without its vocal
    }
    catalog = DataCatalog(
        {
            "jobs": MemoryDataset(jobs),
            "ml_consent": MemoryDataset(world()["ml_consent"]),
            "existing_feature_keys": MemoryDataset(
                pd.DataFrame(columns=["job_id", "schema_version"])
            ),
            "job_audio_files": MemoryDataset(audio),
            "params:features": MemoryDataset({"n_workers": 1, "scheduler": None}),
        }
    )
    outputs = SequentialRunner().run(features_pipeline(), catalog)
    features = outputs["feature_table"].load()
    assert features["job_id"].tolist() == jobs["job_id"].head(2).tolist()
    assert np.isfinite(features[list(FEATURE_NAMES)].to_numpy()).all()
    report = outputs["features_report"].load()
    assert jobs["job_id"].iloc[2] in report
    assert "missing audio file(s): vocal" in report


def test_purge_removes_a_withdrawn_users_rows_and_derived_files(tmp_path: Path) -> None:
    tables = world()
    consent = tables["ml_consent"].assign(
        withdrawn_at=lambda frame: pd.to_datetime(frame["withdrawn_at"], utc=True)
    )
    gone = consent["user_id"].iloc[0]
    consent.loc[0, ["consented", "withdrawn_at"]] = [False, T0]
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = get_engine(url)
    try:
        tables["jobs"].to_sql("jobs", engine, if_exists="append", index=False)
        consent.to_sql("ml_consent", engine, if_exists="append", index=False)
        labels = tables["labels"][tables["labels"]["task"] != TOY.name]  # not in the schema
        labels.to_sql("labels", engine, if_exists="append", index=False)
        derived = tmp_path / "model_input.parquet"
        tables["jobs"][["job_id", "user_id"]].to_parquet(derived)
        catalog = DataCatalog(
            {
                "app_db": MemoryDataset(engine, copy_mode="assign"),
                "personal_data_files": MemoryDataset(
                    [ParquetRows("model_input", (derived,))], copy_mode="assign"
                ),
                "params:purge": MemoryDataset({"abandoned_after": "2h"}),
                "params:ab_analysis": MemoryDataset(conf_parameters("ab_analysis")),
            }
        )
        summary = SequentialRunner().run(purge_pipeline(), catalog)["purge_summary"].load()
        audit = pd.read_sql_table("purge_audit", engine)
    finally:
        dispose_engines()
    assert set(audit["user_id"]) == {gone}
    assert set(audit["table_name"]) == {"labels", "file:model_input"}
    assert summary["places"]["file:model_input"]["users"] == 1
    assert gone not in set(pd.read_parquet(derived)["user_id"])
    with sqlite3.connect(tmp_path / "app.db") as connection:
        left = {row[0] for row in connection.execute("SELECT job_id FROM labels")}
    assert not left & set(tables["jobs"].loc[tables["jobs"]["user_id"] == gone, "job_id"])


def test_the_registry_is_the_only_list_of_tasks(toy_task: TaskSpec) -> None:
    """Every per-task pipeline follows the registry, the toy task included."""
    for create in (training_pipeline, evaluation_pipeline, export_pipeline):
        pipeline: Pipeline = create()
        namespaces = {node.namespace for node in pipeline.nodes if node.namespace}
        assert namespaces == set(task_names())
    # by the feature vector they read, in registration order: the toy task reads the mix
    assert task_names("mix") == ("master_reg", "preset_cls", TOY.name)
    assert task_names("alignment") == ("align_conf",)


@pytest.mark.slow
def test_the_same_seed_gives_the_same_weights_and_another_seed_others() -> None:
    """Training is a function of its data and seeds: the version (the weights' digest) repeats
    with the same seed and changes with another. Digests are not compared across machines:
    PyTorch's CPU kernels round differently between CPUs (the digests that the code before the
    task registry, 35b915f, gave on the machine of the time differ on a 2.0 GHz AMD EPYC)."""
    tables, params = world(), parameters()
    job = {"training_job_id": "golden", "status": "running"}
    for task in task_names():
        frame, _ = build_model_input(
            task,
            tables["features_store"],
            tables["labels"],
            tables["jobs"],
            tables["ml_consent"],
            tables["ml_exclusions"],
            params["params:training.split"],
        )
        model = params[f"params:{task}.model"]
        reseeded = {part: {**model[part], "seed": 8} for part in ("net", "fit")}
        first, again, other = (
            train_task(task, frame, job, settings, now=GOLDEN_TIME).version
            for settings in (model, model, {**model, **reseeded})
        )
        assert first == again, f"{task}: the same seed gave other weights"
        assert other != first, f"{task}: the seed was ignored"
