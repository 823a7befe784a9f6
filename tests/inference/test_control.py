"""Run-time control (CONTRACTS §9): each item from the most specific layer that says something."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bundle_factory import RULES, SCHEMA, build_bundle, typical_features

from mixai_inference.bundle import Experiment, read_manifest
from mixai_inference.control import (
    Control,
    ControlRows,
    ExperimentRow,
    RegistryRow,
    resolve_control,
)
from mixai_inference.metrics import MetricsSink
from mixai_inference.predictor import Predictor
from mixai_inference.tasks import ALIGN_CONF, MASTER_REG, PRESET_CLS, task_names


@pytest.fixture
def manifest_dir(tmp_path: Path) -> Path:
    experiment = Experiment("bundle-exp", MASTER_REG, {"a": "v0", "b": "v1"}, {"a": 1, "b": 1})
    return build_bundle(
        tmp_path / "bundle",
        {MASTER_REG: ["v0", "v1", "v2"], PRESET_CLS: ["p0"], ALIGN_CONF: ["a0"]},
        rollout_pct=40.0,
        experiments={"bundle-exp": experiment},
        flags={"enable_align_confidence": False},
    )


def test_without_the_database_the_bundle_decides(manifest_dir: Path) -> None:
    control = resolve_control(read_manifest(manifest_dir), None, {})
    assert control.flags.enable_cpu_ml
    assert not control.flags.enable_align_confidence
    assert control.tasks[MASTER_REG].active_version == "v0"
    assert control.tasks[MASTER_REG].rollout_pct == 40.0
    assert control.tasks[MASTER_REG].candidate_version in {"v1", "v2"}
    assert list(control.experiments) == ["bundle-exp"]


def test_database_rows_override_the_bundle_item_by_item(manifest_dir: Path) -> None:
    rows = ControlRows(
        flags={"enable_align_confidence": True},
        models=[
            RegistryRow(MASTER_REG, "v0", "retired", 0.0, "2026-01-01", "2026-01-02"),
            RegistryRow(MASTER_REG, "v2", "active", 10.0, "2026-01-03", "2026-01-04"),
            RegistryRow(MASTER_REG, "v1", "candidate", 0.0, "2026-01-05", None),
        ],
        experiments=[
            ExperimentRow("bundle-exp", MASTER_REG, '{"a": "active"}', '{"a": 1}', 1.0, "stopped"),
            ExperimentRow(
                "db-exp",
                MASTER_REG,
                json.dumps({"control": "active", "treatment": "candidate", "off": "rules"}),
                json.dumps({"control": 2, "treatment": 1, "off": 1}),
                0.5,
                "running",
            ),
            ExperimentRow("draft", PRESET_CLS, '{"a": "active"}', '{"a": 1}', 1.0, "draft"),
        ],
    )
    control = resolve_control(read_manifest(manifest_dir), rows, {})
    assert control.flags.enable_align_confidence  # the row beats the bundle's false
    assert control.tasks[MASTER_REG].active_version == "v2"
    assert control.tasks[MASTER_REG].rollout_pct == 10.0
    # a task without registry rows keeps the bundle's versions
    assert control.tasks[PRESET_CLS].active_version == "p0"
    # a stopped row hides the bundle's experiment of the same id; a draft is not served
    assert list(control.experiments) == ["db-exp"]
    served = control.experiments["db-exp"]
    assert dict(served.variants) == {"control": "v2", "treatment": "v1", "off": None}
    assert served.coverage == 0.5
    assert served.salt is None


def test_the_environment_beats_the_database(manifest_dir: Path) -> None:
    rows = ControlRows(flags={"enable_cpu_ml": True, "enable_master_regression": True})
    env = {"ENABLE_CPU_ML": "false"}
    assert not resolve_control(read_manifest(manifest_dir), rows, env).flags.enable_cpu_ml


@pytest.mark.parametrize(
    ("variants", "weights", "coverage", "problem"),
    [
        ('{"a": "candidate"}', '{"a": 1}', 1.0, "has no candidate version"),
        ('{"a": "active"}', '{"b": 1}', 1.0, "must name the same variants"),
        ('{"a": "active"}', '{"a": -1}', 1.0, "non-negative"),
        ('{"a": "active"}', '{"a": 1}', 1.5, "coverage must be in [0, 1]"),
        ("not json", '{"a": 1}', 1.0, "Expecting value"),
        ('{"a b": "active"}', '{"a b": 1}', 1.0, "variant names must match"),
    ],
)
def test_an_unusable_experiment_row_is_left_out_and_said(
    variants: str, weights: str, coverage: float, problem: str
) -> None:
    rows = ControlRows(
        models=[RegistryRow(PRESET_CLS, "p0", "active", 100.0)],
        experiments=[ExperimentRow("bad", PRESET_CLS, variants, weights, coverage, "running")],
    )
    control = resolve_control(None, rows, {})
    assert control.experiments == {}
    assert len(control.problems) == 1
    assert problem in control.problems[0]


def test_set_control_switches_answers_without_reloading_sessions(manifest_dir: Path) -> None:
    sink = MetricsSink()
    predictor = Predictor.from_bundle(
        manifest_dir, metrics_sink=sink, rules=RULES, feature_schema_version=SCHEMA
    )
    x = typical_features()
    base = predictor.control
    stopped = ExperimentRow("bundle-exp", MASTER_REG, '{"a": "active"}', '{"a": 1}', 1.0, "stopped")
    everyone = ControlRows(
        models=[RegistryRow(MASTER_REG, "v1", "active", 100.0)], experiments=[stopped]
    )
    predictor.set_control(resolve_control(predictor.manifest, everyone, {}))
    loads = predictor.cache_info()["loads"]
    answer = predictor.predict(x, user_id="u1", request_id="r1").master_reg
    assert (answer.source, answer.model_version) == ("ml", "v1")
    assert predictor.cache_info()["loads"] == loads  # preloaded before the swap

    off = ControlRows(flags={"enable_cpu_ml": False})
    predictor.set_control(resolve_control(predictor.manifest, off, {}))
    assert predictor.predict(x, user_id="u1").master_reg.reason == "disabled"
    predictor.set_control(base)
    assert predictor.control is base

    missing = ControlRows(
        models=[RegistryRow(MASTER_REG, "v9", "active", 100.0)], experiments=[stopped]
    )
    predictor.set_control(resolve_control(predictor.manifest, missing, {}))
    answer = predictor.predict(x, user_id="u1").master_reg
    assert (answer.source, answer.reason) == ("rules", "not_in_bundle")


def test_records_carry_the_request_and_the_experiment(manifest_dir: Path) -> None:
    sink = MetricsSink()
    predictor = Predictor.from_bundle(
        manifest_dir, metrics_sink=sink, rules=RULES, feature_schema_version=SCHEMA
    )
    rows = ControlRows(
        experiments=[
            ExperimentRow("all-in", MASTER_REG, '{"x": "active"}', '{"x": 1}', 1.0, "running")
        ]
    )
    predictor.set_control(resolve_control(predictor.manifest, rows, {}))
    predictor.predict(typical_features(), user_id="u7", request_id="req-1")
    records = {r.task: r for r in sink.records()}
    assert records[MASTER_REG].request_id == "req-1"
    assert (records[MASTER_REG].experiment_id, records[MASTER_REG].variant) == ("all-in", "x")
    assert records[PRESET_CLS].experiment_id is None
    assert records[MASTER_REG].to_row()["request_id"] == "req-1"


def test_control_from_manifest_keeps_explicit_flags(manifest_dir: Path) -> None:
    manifest = read_manifest(manifest_dir)
    from mixai_inference.flags import Flags

    control = Control.from_manifest(manifest, Flags(enable_cpu_ml=False), {"ENABLE_CPU_ML": "1"})
    assert not control.flags.enable_cpu_ml


def test_an_experiment_of_an_unknown_task_names_the_known_ones() -> None:
    row = ExperimentRow("bad", "speech_rec", '{"a": "active"}', '{"a": 1}', 1.0, "running")
    control = resolve_control(None, ControlRows(experiments=[row]), {})
    assert control.experiments == {}
    assert control.problems == (
        f"experiment bad: unknown task 'speech_rec'; expected one of {list(task_names())}",
    )
