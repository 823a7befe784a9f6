"""Predictor: model answers, flags, routing, clipping, provenance and metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import (
    ALIGN_NAMES,
    FEATURE_NAMES,
    RULES,
    affine_model,
    build_bundle,
    master_bias,
    open_bundle,
    preset_bias,
    typical_features,
)

from mixai_inference.bundle import Experiment
from mixai_inference.flags import Flags
from mixai_inference.metrics import MetricsSink
from mixai_inference.predictor import FAILURE_REASONS, REASONS, Predictor
from mixai_inference.routing import assign_variant
from mixai_inference.sessions import session_options
from mixai_inference.tasks import (
    ALIGN_CONF,
    MASTER_PARAM_NAMES,
    MASTER_PARAM_RANGES,
    MASTER_REG,
    PRESET_CLS,
    PRESETS,
)

X = typical_features()
USERS = [f"user-{i}" for i in range(400)]


def rules_master(x: np.ndarray = X) -> dict[str, float]:
    return dict(zip(MASTER_PARAM_NAMES, RULES.master_params(x[None, :])[0].tolist(), strict=True))


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return build_bundle(tmp_path / "bundle")


def test_models_answer_when_enabled(bundle: Path) -> None:
    predictor = open_bundle(bundle)
    result = predictor.predict(X, user_id="u1", job_id="j1")
    assert result.params == pytest.approx(
        dict(zip(MASTER_PARAM_NAMES, master_bias(0), strict=True))
    )
    assert result.preset_scores == pytest.approx(dict(zip(PRESETS, preset_bias(0), strict=True)))
    assert result.preset == "bright_pop"  # the first of the largest scores
    for prov in (result.master_reg, result.preset_cls):
        assert (prov.source, prov.model_version, prov.reason) == ("ml", "v0", None)
    aligned = predictor.align_from_features(12.5, np.zeros(len(ALIGN_NAMES)), user_id="u1")
    assert (aligned.offset_ms, aligned.confidence) == (12.5, pytest.approx(0.5))
    assert aligned.align_conf.source == "ml"


def test_a_disabled_task_answers_from_the_rules(bundle: Path) -> None:
    flags = Flags(enable_cpu_ml=True, enable_master_regression=False)
    result = open_bundle(bundle, flags=flags).predict(X)
    assert result.params == pytest.approx(rules_master())
    assert (result.master_reg.source, result.master_reg.reason) == ("rules", "disabled")
    assert result.preset_cls.source == "ml"
    off = open_bundle(bundle, flags=Flags()).predict(X)
    assert {off.master_reg.reason, off.preset_cls.reason} == {"disabled"}


def test_bundle_flags_and_environment_decide_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = build_bundle(tmp_path / "b", flags={"enable_preset_recommendation": False})
    assert open_bundle(path).predict(X).preset_cls.reason == "disabled"
    monkeypatch.setenv("ENABLE_PRESET_RECOMMENDATION", "true")
    assert open_bundle(path).predict(X).preset_cls.source == "ml"
    monkeypatch.setenv("ENABLE_CPU_ML", "false")
    assert open_bundle(path).predict(X).master_reg.reason == "disabled"


def test_outputs_are_clipped_to_the_contract_and_scores_renormalised(tmp_path: Path) -> None:
    wild = np.array([5.0, -60.0, 60.0, 0.5, -99.0, 0.0, 3.0, 9.0])
    scores = np.array([2.0, -1.0, 1.0, 0.0, 0.0, 1.0])
    models = {
        (MASTER_REG, "v0"): affine_model(MASTER_REG, "v0", wild),
        (PRESET_CLS, "v0"): affine_model(PRESET_CLS, "v0", scores),
    }
    result = open_bundle(build_bundle(tmp_path / "b", models=models)).predict(X)
    expected = [
        min(max(v, lo), hi) for v, (lo, hi) in zip(wild, MASTER_PARAM_RANGES.values(), strict=True)
    ]
    assert list(result.params.values()) == pytest.approx(expected)
    assert list(result.preset_scores.values()) == pytest.approx([0.5, 0, 0.25, 0, 0, 0.25])
    assert result.preset == "natural"
    assert result.master_reg.source == result.preset_cls.source == "ml"


def test_features_of_the_wrong_length_raise_and_nan_features_get_the_rules(bundle: Path) -> None:
    predictor = open_bundle(bundle)
    with pytest.raises(ValueError, match=rf"must be {len(FEATURE_NAMES)} numbers"):
        predictor.predict(X[:-1])
    with pytest.raises(ValueError, match="numbers"):
        predictor.predict(np.zeros((2, len(FEATURE_NAMES))))
    assert predictor.predict(X[None, :]).master_reg.source == "ml"
    bad = X.copy()
    bad[0] = np.nan
    result = predictor.predict(bad)
    assert {result.master_reg.reason, result.preset_cls.reason} == {"invalid_features"}
    assert result.params == pytest.approx(rules_master(bad))
    assert all(math.isfinite(v) for v in result.params.values())
    nan_align = np.full(len(ALIGN_NAMES), np.nan)
    assert predictor.align_from_features(0.0, nan_align).align_conf.reason == "invalid_features"


def test_experiment_routes_each_user_to_their_variant(tmp_path: Path) -> None:
    weights = {"control": 70, "t1": 20, "t2": 10}
    experiment = Experiment(
        "exp-3", MASTER_REG, {"control": "v0", "t1": "v1", "t2": "v2"}, weights, coverage=0.5
    )
    path = build_bundle(
        tmp_path / "b", {MASTER_REG: ["v0", "v1", "v2"]}, experiments={"exp-3": experiment}
    )
    predictor = open_bundle(path)
    seen = set()
    for user in USERS:
        result = predictor.predict(X, user_id=user)
        variant = assign_variant(user, "exp-3", weights, 0.5)
        prov = result.master_reg
        assert (prov.variant, prov.experiment_id) == (variant, "exp-3" if variant else None)
        version = experiment.variants[variant] if variant else "v0"
        assert prov.model_version == version
        assert result.params["target_lufs"] == pytest.approx(master_bias(int(version[1]))[0])
        assert predictor.route(MASTER_REG, user) == prov
        seen.add(version)
    assert seen == {"v0", "v1", "v2"}
    assert open_bundle(path).predict(X).master_reg.variant is None  # anonymous: active
    assert predictor.predict(X, user_id="\ud800 odd id").master_reg.source == "ml"


def test_a_rules_variant_answers_from_the_rules(tmp_path: Path) -> None:
    experiment = Experiment(
        "ml-vs-rules", PRESET_CLS, {"control": None, "ml": "v0"}, {"control": 1, "ml": 1}
    )
    predictor = open_bundle(build_bundle(tmp_path / "b", experiments={"ml-vs-rules": experiment}))
    sources = {}
    for user in USERS[:100]:
        prov = predictor.predict(X, user_id=user).preset_cls
        sources[prov.variant] = (prov.source, prov.reason)
    assert sources == {"control": ("rules", "variant_rules"), "ml": ("ml", None)}


def test_rollout_serves_the_active_version_to_its_share_of_users(tmp_path: Path) -> None:
    predictor = open_bundle(build_bundle(tmp_path / "b", rollout_pct=30.0))
    in_ml = [predictor.predict(X, user_id=u).master_reg for u in USERS]
    share = sum(p.source == "ml" for p in in_ml) / len(USERS)
    assert abs(share - 0.3) < 4 * math.sqrt(0.21 / len(USERS))
    assert {p.reason for p in in_ml if p.source == "rules"} == {"rollout"}
    for user, prov in zip(USERS, in_ml, strict=True):
        expected = assign_variant(user, "rollout:master_reg", {"v0": 1}, 0.3) is not None
        assert (prov.source == "ml") is expected
    assert predictor.predict(X).master_reg.source == "ml"  # anonymous calls: the active version
    zero = open_bundle(build_bundle(tmp_path / "z", rollout_pct=0.0))
    assert zero.predict(X).master_reg.reason == "rollout"


def test_a_task_without_an_active_model_answers_from_the_rules(tmp_path: Path) -> None:
    path = build_bundle(
        tmp_path / "b", {MASTER_REG: ["v0"], PRESET_CLS: ["v0"]}, active={PRESET_CLS: None}
    )
    result = open_bundle(path).predict(X)
    assert (result.master_reg.source, result.preset_cls.reason) == ("ml", "no_model")
    assert (
        open_bundle(path).align_from_features(0, np.zeros(len(ALIGN_NAMES))).align_conf.reason
        == "no_model"
    )


def test_an_unreadable_bundle_still_answers_from_the_rules(tmp_path: Path) -> None:
    predictor = open_bundle(tmp_path / "missing")
    assert predictor.bundle_error is not None
    assert "cannot read the bundle manifest" in predictor.bundle_error
    result = predictor.predict(X)
    assert (result.master_reg.source, result.master_reg.reason) == ("rules", "bundle_unavailable")
    assert result.params == pytest.approx(rules_master())
    only_rules = Predictor.rules_only(rules=RULES, metrics_sink=MetricsSink())
    assert only_rules.predict(X).preset_cls.reason == "no_bundle"


def test_every_answer_is_recorded(bundle: Path) -> None:
    sink = MetricsSink()
    predictor = open_bundle(
        bundle,
        metrics_sink=sink,
        flags=Flags(enable_cpu_ml=True, enable_preset_recommendation=False),
    )
    result = predictor.predict(X, user_id="u7", job_id="j7")
    predictor.align_from_features(3.0, np.zeros(len(ALIGN_NAMES)), user_id="u7", job_id="j8")
    master, preset, align = sink.records()
    assert (master.task, master.source, master.model_version, master.ok) == (
        MASTER_REG,
        "ml",
        "v0",
        True,
    )
    assert (preset.task, preset.source, preset.error, preset.ok) == (
        PRESET_CLS,
        "rules",
        "disabled",
        True,
    )
    assert (align.task, align.job_id, align.user_id) == (ALIGN_CONF, "j8", "u7")
    assert json.loads(master.to_row()["prediction"]) == pytest.approx(dict(result.params))
    assert json.loads(preset.to_row()["prediction"])["preset"] == result.preset
    assert json.loads(align.to_row()["prediction"]) == {"offset_ms": 3.0, "confidence": 0.5}
    assert all(0 <= r.latency_ms < 1000 for r in (master, preset, align))


def test_result_to_dict_is_the_cli_json_shape(bundle: Path) -> None:
    out = json.loads(json.dumps(open_bundle(bundle).predict(X, user_id="u").to_dict()))
    assert set(MASTER_PARAM_NAMES) <= set(out)
    assert out["preset"] in PRESETS
    assert set(out["preset_scores"]) == set(PRESETS)
    assert out[MASTER_REG] == {
        "source": "ml",
        "model_version": "v0",
        "variant": None,
        "experiment_id": None,
        "reason": None,
        "ood_score": None,  # the bundle has no training references
        "ood": False,
        "personalized": False,
    }


def test_preload_loads_and_warms_the_active_models(bundle: Path) -> None:
    assert open_bundle(bundle).cache_info()["loads"] == 3
    lazy = open_bundle(bundle, preload=False)
    assert lazy.cache_info()["loads"] == 0
    lazy.predict(X)
    assert sorted(lazy.cache_info()["sessions"]) == [(MASTER_REG, "v0"), (PRESET_CLS, "v0")]


def test_sessions_use_one_thread_without_spinning() -> None:
    import onnxruntime as ort

    options = session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"


def test_reason_codes_are_documented_and_failures_marked() -> None:
    deliberate = {
        "disabled",
        "no_model",
        "rollout",
        "variant_rules",
        "no_bundle",
        "out_of_distribution",
    }
    assert deliberate.isdisjoint(FAILURE_REASONS)
    assert set(REASONS) == deliberate | FAILURE_REASONS
    assert {
        "file_missing",
        "sha256_mismatch",
        "schema_mismatch",
        "load_error",
        "runtime_error",
        "non_finite_output",
        "invalid_features",
        "bundle_unavailable",
    } <= FAILURE_REASONS
