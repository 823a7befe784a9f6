"""Per-user adapters in the runtime: the store's format, and the predictor applying them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import (
    RULES,
    SCHEMA,
    build_bundle,
    feature_scales,
    master_bias,
    open_bundle,
    preset_bias,
    reference_for,
    typical_features,
)

from mixai_inference.adapters import (
    ADAPTERS_FILE,
    AdapterError,
    AdapterFile,
    TaskAdapters,
    UserAdapters,
)
from mixai_inference.bundle import BundleError, Manifest, read_manifest, write_bundle
from mixai_inference.flags import Flags
from mixai_inference.metrics import MetricsSink
from mixai_inference.ood import ENV_POLICY
from mixai_inference.tasks import (
    MASTER_PARAM_NAMES,
    MASTER_PARAM_RANGES,
    MASTER_REG,
    PRESET_CLS,
    PRESETS,
)

X = typical_features()
OFFSETS = (1.0, 0.5, -0.5, 0.25, -2.0, 0.5, -0.1, 0.05)
LOG_RATIOS = (0.0, math.log(4.0), 0.0, 0.0, 0.0, -1.0)


def store(version: str = "v0", offsets: tuple[float, ...] = OFFSETS) -> UserAdapters:
    return UserAdapters(
        {
            MASTER_REG: TaskAdapters(version, {"u1": offsets}),
            PRESET_CLS: TaskAdapters(version, {"u1": LOG_RATIOS}),
        },
        "2026-11-01T00:00:00Z",
    )


def test_a_known_user_gets_the_adapter_and_everyone_else_the_population(tmp_path: Path) -> None:
    sink = MetricsSink()
    predictor = open_bundle(build_bundle(tmp_path / "bundle", adapters=store()), metrics_sink=sink)
    population = master_bias(0)
    for user in ("u2", None):
        other = predictor.predict(X, user_id=user)
        assert list(other.params.values()) == pytest.approx(population)
        assert not other.master_reg.personalized
        assert not other.preset_cls.personalized
    mine = predictor.predict(X, user_id="u1", job_id="j1")
    assert list(mine.params.values()) == pytest.approx(population + np.array(OFFSETS), abs=1e-5)
    expected = preset_bias(0) * np.exp(LOG_RATIOS)
    assert list(mine.preset_scores.values()) == pytest.approx(expected / expected.sum(), abs=1e-6)
    assert mine.preset == PRESETS[1]  # the user's favoured preset now wins
    assert mine.master_reg.personalized
    assert mine.preset_cls.personalized
    assert mine.to_dict()[MASTER_REG]["personalized"] is True
    recorded = [r for r in sink.records() if r.job_id == "j1" and r.task == MASTER_REG]
    assert recorded[0].prediction["target_lufs"] == pytest.approx(population[0] + OFFSETS[0])


def test_the_guard_scores_personalised_answers_and_its_fallback_drops_the_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_POLICY, raising=False)
    bundle = build_bundle(
        tmp_path / "bundle",
        adapters=store(),
        references={task: reference_for(task) for task in (MASTER_REG, PRESET_CLS)},
        ood_policy={MASTER_REG: "fallback"},
    )
    predictor = open_bundle(bundle)
    near = predictor.predict(X, user_id="u1").to_dict()
    for task in (MASTER_REG, PRESET_CLS):
        assert near[task]["personalized"] is True
        assert near[task]["ood"] is False
        assert 0.0 <= near[task]["ood_score"] <= 1.0
    assert near["target_lufs"] == pytest.approx(master_bias(0)[0] + OFFSETS[0], abs=1e-5)
    far_features = X + 25.0 * feature_scales()
    far = predictor.predict(far_features, user_id="u1").to_dict()
    assert far[MASTER_REG]["reason"] == "out_of_distribution"  # its policy: fallback
    assert far[MASTER_REG]["personalized"] is False  # the rules' answer is never adjusted
    assert [far[name] for name in MASTER_PARAM_NAMES] == pytest.approx(
        RULES.master_params(far_features[None, :])[0]
    )
    assert far[PRESET_CLS]["source"] == "ml"  # its policy: flag
    assert far[PRESET_CLS]["ood"] is True
    assert far[PRESET_CLS]["personalized"] is True


def test_adjusted_parameters_stay_inside_their_ranges(tmp_path: Path) -> None:
    far = (100.0, -100.0, *OFFSETS[2:])
    predictor = open_bundle(build_bundle(tmp_path / "bundle", adapters=store(offsets=far)))
    params = predictor.predict(X, user_id="u1").params
    assert params["target_lufs"] == MASTER_PARAM_RANGES["target_lufs"][1]
    assert params["eq_low_gain_db"] == MASTER_PARAM_RANGES["eq_low_gain_db"][0]


def test_adapters_adjust_only_the_version_they_were_fitted_against(tmp_path: Path) -> None:
    predictor = open_bundle(build_bundle(tmp_path / "bundle", adapters=store(version="v9")))
    answer = predictor.predict(X, user_id="u1")
    assert list(answer.params.values()) == pytest.approx(master_bias(0))
    assert not answer.master_reg.personalized


def test_the_rules_answers_are_never_adjusted(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "bundle", adapters=store())
    predictor = open_bundle(bundle, flags=Flags(enable_cpu_ml=False))
    answer = predictor.predict(X, user_id="u1")
    assert answer.master_reg.source == "rules"
    assert not answer.master_reg.personalized
    expected = RULES.master_params(X[None, :])[0]
    assert [answer.params[name] for name in MASTER_PARAM_NAMES] == pytest.approx(expected)


def test_a_tampered_store_leaves_the_population_answers(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "bundle", adapters=store())
    path = bundle / ADAPTERS_FILE
    path.write_bytes(path.read_bytes().replace(b"1.0", b"9.0", 1))
    predictor = open_bundle(bundle)
    assert predictor.adapters is None
    assert "sha256" in str(predictor.adapters_error)
    answer = predictor.predict(X, user_id="u1")
    assert answer.master_reg.source == "ml"  # the models still serve
    assert list(answer.params.values()) == pytest.approx(master_bias(0))


def test_the_manifest_lists_the_store_with_its_sha256(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "bundle", adapters=store())
    manifest = read_manifest(bundle)
    assert manifest.user_adapters is not None
    assert manifest.user_adapters.file == ADAPTERS_FILE
    assert manifest.files[ADAPTERS_FILE] == manifest.user_adapters.sha256
    files = {name: bundle / name for name in manifest.files if name != ADAPTERS_FILE}
    with pytest.raises(BundleError, match="missing"):
        write_bundle(tmp_path / "other", manifest, files)
    model_file = next(iter(files))
    with pytest.raises(BundleError, match="listed twice"):
        Manifest(
            feature_schema_version=SCHEMA,
            tasks=manifest.tasks,
            user_adapters=AdapterFile(model_file, manifest.user_adapters.sha256),
        )


def test_the_store_round_trips_and_its_format_is_checked() -> None:
    good = json.loads(store().to_bytes())
    assert UserAdapters.from_json(good) == store()
    broken = {
        "unknown task": ("tasks", {"nope": good["tasks"][MASTER_REG]}),
        "not personalised": ("tasks", {"align_conf": good["tasks"][MASTER_REG]}),
        "format_version": ("format_version", 2),
    }
    for problem, (key, value) in broken.items():
        with pytest.raises(AdapterError, match=problem):
            UserAdapters.from_json({**good, key: value})
    for users in (
        {"u1": [1.0]},
        {"u1": [float("nan")] * 8},
        {"u1": [True] * 8},
        {"u1": [10**400] * 8},  # JSON integer beyond float64
    ):
        entry = {**good["tasks"][MASTER_REG], "users": users}
        with pytest.raises(AdapterError, match="8 finite numbers"):
            UserAdapters.from_json({**good, "tasks": {MASTER_REG: entry}})
    outputs = {**good["tasks"][MASTER_REG], "outputs": list(reversed(MASTER_PARAM_NAMES))}
    with pytest.raises(AdapterError, match="outputs"):
        UserAdapters.from_json({**good, "tasks": {MASTER_REG: outputs}})


def test_withdrawn_users_are_left_out() -> None:
    assert store().without({"u1"}).for_user("u1") == {}
    assert set(store().for_user("u1")) == {MASTER_REG, PRESET_CLS}
