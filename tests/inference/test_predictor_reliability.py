"""Broken models never break an answer; threads get the right version and cache."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from bundle_factory import (
    INPUT_DIMS,
    RULES,
    SCHEMA,
    affine_model,
    build_bundle,
    master_bias,
    open_bundle,
    preset_bias,
    typical_features,
)
from onnx import TensorProto, helper, numpy_helper

from mixai_inference.bundle import MANIFEST_NAME, Experiment
from mixai_inference.predictor import Predictor
from mixai_inference.routing import assign_variant
from mixai_inference.tasks import MASTER_PARAM_NAMES, MASTER_REG, PRESET_CLS

X = typical_features()


def rules_params() -> dict[str, float]:
    return dict(zip(MASTER_PARAM_NAMES, RULES.master_params(X[None, :])[0].tolist(), strict=True))


def assert_rules_answer(predictor: Predictor, reason: str) -> None:
    result = predictor.predict(X, user_id="u1")
    assert (result.master_reg.source, result.master_reg.reason) == ("rules", reason)
    assert result.master_reg.model_version == "v0"
    assert result.params == pytest.approx(rules_params())
    record = next(r for r in predictor.metrics.records() if r.task == MASTER_REG)
    assert (record.ok, record.error) == (False, reason)


def master_model(graph: onnx.GraphProto, version: str) -> bytes:
    """``graph`` as a checked master_reg model of ``version``."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    helper.set_model_props(
        model, {"task": MASTER_REG, "version": version, "feature_schema_version": SCHEMA}
    )
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def gather_model(version: str) -> bytes:
    """master_reg model that indexes a table with the first feature: fine for the warm-up's
    zeros, an onnxruntime error ("indices out of bounds") for typical features."""
    dim = INPUT_DIMS[MASTER_REG]
    graph = helper.make_graph(
        [
            helper.make_node("Slice", ["features", "start", "stop", "axis"], ["first"]),
            helper.make_node("Cast", ["first"], ["index"], to=TensorProto.INT64),
            helper.make_node("Gather", ["table", "index"], ["rows"], axis=0),
            helper.make_node("Reshape", ["rows", "shape"], ["params"]),
        ],
        "gather",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", dim])],
        [helper.make_tensor_value_info("params", TensorProto.FLOAT, ["batch", 8])],
        initializer=[
            numpy_helper.from_array(master_bias(0).astype(np.float32)[None, :], "table"),
            numpy_helper.from_array(np.array([0], np.int64), "start"),
            numpy_helper.from_array(np.array([1], np.int64), "stop"),
            numpy_helper.from_array(np.array([1], np.int64), "axis"),
            numpy_helper.from_array(np.array([-1, 8], np.int64), "shape"),
        ],
    )
    return master_model(graph, version)


def row_count_model(version: str) -> bytes:
    """master_reg model whose output has two rows when the first feature's magnitude exceeds
    0.5: the warm-up's zeros give the one row the load checks, typical features two rows."""
    dim = INPUT_DIMS[MASTER_REG]
    graph = helper.make_graph(
        [
            helper.make_node("Slice", ["features", "start", "stop", "axis"], ["first"]),
            helper.make_node("Abs", ["first"], ["magnitude"]),
            helper.make_node("Greater", ["magnitude", "half"], ["large"]),
            helper.make_node("Cast", ["large"], ["extra"], to=TensorProto.INT64),
            helper.make_node("Reshape", ["extra", "one"], ["extra_row"]),
            helper.make_node("Add", ["extra_row", "one"], ["rows"]),
            helper.make_node("Concat", ["rows", "one"], ["repeats"], axis=0),
            helper.make_node("Tile", ["table", "repeats"], ["params"]),
        ],
        "row_count",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", dim])],
        [helper.make_tensor_value_info("params", TensorProto.FLOAT, ["rows", 8])],
        initializer=[
            numpy_helper.from_array(master_bias(0).astype(np.float32)[None, :], "table"),
            numpy_helper.from_array(np.array([0], np.int64), "start"),
            numpy_helper.from_array(np.array([1], np.int64), "stop"),
            numpy_helper.from_array(np.array([1], np.int64), "axis"),
            numpy_helper.from_array(np.array([1], np.int64), "one"),
            numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        ],
    )
    return master_model(graph, version)


def bundle_with_master(tmp_path: Path, data: bytes) -> Path:
    return build_bundle(tmp_path / "bundle", models={(MASTER_REG, "v0"): data})


@pytest.mark.parametrize("preload", [True, False])
def test_missing_file(tmp_path: Path, preload: bool) -> None:
    path = build_bundle(tmp_path / "bundle")
    (path / "master_reg-v0.onnx").unlink()
    assert_rules_answer(open_bundle(path, preload=preload), "file_missing")


def test_file_tampered_before_loading(tmp_path: Path) -> None:
    path = build_bundle(tmp_path / "bundle")
    data = bytearray((path / "master_reg-v0.onnx").read_bytes())
    data[-5] ^= 0xFF
    (path / "master_reg-v0.onnx").write_bytes(bytes(data))
    assert_rules_answer(open_bundle(path), "sha256_mismatch")


def test_file_tampered_after_the_bundle_was_read_is_caught_at_load(tmp_path: Path) -> None:
    path = build_bundle(tmp_path / "bundle")
    predictor = open_bundle(path, preload=False)
    (path / "master_reg-v0.onnx").write_bytes(affine_model(MASTER_REG, "v0", master_bias(9)))
    assert_rules_answer(predictor, "sha256_mismatch")


def test_corrupt_file_with_a_matching_hash(tmp_path: Path) -> None:
    garbage = np.random.default_rng(0).bytes(4096)
    assert_rules_answer(open_bundle(bundle_with_master(tmp_path, garbage)), "load_error")


@pytest.mark.parametrize(
    ("where", "reason"),
    [("manifest", "schema_mismatch"), ("entry", "schema_mismatch"), ("onnx", "schema_mismatch")],
)
def test_schema_mismatch(tmp_path: Path, where: str, reason: str) -> None:
    if where == "onnx":
        path = bundle_with_master(
            tmp_path, affine_model(MASTER_REG, "v0", master_bias(0), schema="0.9")
        )
    else:
        path = build_bundle(tmp_path / "bundle")
        manifest = json.loads((path / MANIFEST_NAME).read_text())
        if where == "manifest":
            manifest["feature_schema_version"] = "0.9"
        else:
            manifest["tasks"][MASTER_REG]["models"]["v0"]["feature_schema_version"] = "0.9"
        (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    predictor = open_bundle(path)
    if where == "manifest":  # the whole bundle is of another schema
        assert predictor.predict(X).master_reg.model_version is None
        assert predictor.predict(X).preset_cls.reason == "schema_mismatch"
    else:
        assert_rules_answer(predictor, reason)


def test_input_width_differing_from_the_features_is_a_schema_mismatch(tmp_path: Path) -> None:
    path = build_bundle(tmp_path / "bundle")
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    manifest["tasks"][MASTER_REG]["models"]["v0"]["input_dim"] += 1
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert_rules_answer(open_bundle(path), "schema_mismatch")


def test_metadata_of_another_version(tmp_path: Path) -> None:
    data = affine_model(MASTER_REG, "v7", master_bias(0))
    assert_rules_answer(open_bundle(bundle_with_master(tmp_path, data)), "metadata_mismatch")


def test_graph_breaking_the_io_contract(tmp_path: Path) -> None:
    data = affine_model(MASTER_REG, "v0", master_bias(0), input_name="x")
    assert_rules_answer(open_bundle(bundle_with_master(tmp_path, data)), "io_mismatch")
    data = affine_model(MASTER_REG, "v0", master_bias(0)[:7])
    assert_rules_answer(open_bundle(bundle_with_master(tmp_path, data)), "io_mismatch")


@pytest.mark.parametrize("model", [gather_model, row_count_model])
def test_runtime_error(tmp_path: Path, model: Callable[[str], bytes]) -> None:
    """An onnxruntime error, or an output whose shape is not the one the load verified (the
    output is bound to a buffer of that shape)."""
    predictor = open_bundle(bundle_with_master(tmp_path, model("v0")))
    assert_rules_answer(predictor, "runtime_error")
    zeros = predictor.predict(np.zeros_like(X))  # the same model works on other input
    assert (zeros.master_reg.source, zeros.params["target_lufs"]) == ("ml", -19.5)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_output(tmp_path: Path, value: float) -> None:
    bias = master_bias(0)
    bias[3] = value
    data = affine_model(MASTER_REG, "v0", bias)
    assert_rules_answer(open_bundle(bundle_with_master(tmp_path, data)), "non_finite_output")


def test_a_preset_model_without_a_usable_distribution(tmp_path: Path) -> None:
    path = build_bundle(
        tmp_path / "bundle",
        models={(PRESET_CLS, "v0"): affine_model(PRESET_CLS, "v0", -np.ones(6))},
    )
    result = open_bundle(path).predict(X)
    assert (result.preset_cls.source, result.preset_cls.reason) == ("rules", "bad_output")
    assert sum(result.preset_scores.values()) == pytest.approx(1.0)


def test_a_failed_load_is_not_retried(tmp_path: Path) -> None:
    predictor = open_bundle(bundle_with_master(tmp_path, b"junk"), preload=False)
    for _ in range(50):
        assert predictor.predict(X).master_reg.reason == "load_error"
    info = predictor.cache_info()
    assert info["failures"] == {(MASTER_REG, "v0"): "load_error"}
    assert info["loads"] == 1  # the preset model only


# --- concurrency ---------------------------------------------------------------------------


class CountingSession(ort.InferenceSession):
    """Counts live sessions (CPython frees a session as soon as its last reference goes)."""

    lock = threading.Lock()
    live = 0
    peak = 0
    created: ClassVar[list[str]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        with CountingSession.lock:
            CountingSession.live += 1
            CountingSession.peak = max(CountingSession.peak, CountingSession.live)
            meta = self.get_modelmeta().custom_metadata_map
            CountingSession.created.append(f"{meta['task']}/{meta['version']}")

    def __del__(self) -> None:
        with CountingSession.lock:
            CountingSession.live -= 1


@pytest.fixture
def counting_sessions(monkeypatch: pytest.MonkeyPatch) -> type[CountingSession]:
    CountingSession.live = CountingSession.peak = 0
    CountingSession.created.clear()
    monkeypatch.setattr(ort, "InferenceSession", CountingSession)
    return CountingSession


MASTER_VERSIONS = ["m0", "m1", "m2", "m3"]
PRESET_VERSIONS = ["p0", "p1", "p2", "p3"]
EXPERIMENTS = {
    "exp-master": Experiment(
        "exp-master",
        MASTER_REG,
        {"a": "m1", "b": "m2", "c": "m3"},
        {"a": 1, "b": 1, "c": 1},
        coverage=0.8,
    ),
    "exp-preset": Experiment(
        "exp-preset",
        PRESET_CLS,
        {"a": "p1", "b": "p2", "c": "p3"},
        {"a": 2, "b": 1, "c": 1},
        coverage=0.8,
    ),
}


VERSIONS = {MASTER_REG: MASTER_VERSIONS, PRESET_CLS: PRESET_VERSIONS}


def expected_version(task: str, user: str) -> str:
    experiment = next(e for e in EXPERIMENTS.values() if e.task == task)
    variant = assign_variant(
        user, experiment.experiment_id, experiment.weights, experiment.coverage
    )
    if variant is None:  # outside the experiment: the active version
        return VERSIONS[task][0]
    return str(experiment.variants[variant])


def test_eight_threads_with_eight_versions_and_five_sessions(
    tmp_path: Path, counting_sessions: type[CountingSession]
) -> None:
    path = build_bundle(
        tmp_path / "bundle",
        VERSIONS,
        experiments=EXPERIMENTS,
    )
    predictor = open_bundle(path, max_sessions=5, route_cache_size=64)
    users = [f"user-{i}" for i in range(500)]
    errors: list[BaseException] = []
    wrong: list[tuple[str, Any]] = []
    calls_per_thread = 400

    def work(t: int) -> None:
        try:
            for i in range(calls_per_thread):
                user = users[(t * 7919 + i * 31) % len(users)]
                result = predictor.predict(X, user_id=user)
                m, p = result.master_reg, result.preset_cls
                if (m.source, p.source) != ("ml", "ml"):
                    wrong.append(("source", result))
                if m.model_version != expected_version(MASTER_REG, user):
                    wrong.append(("master route", (user, m)))
                if p.model_version != expected_version(PRESET_CLS, user):
                    wrong.append(("preset route", (user, p)))
                m_index = MASTER_VERSIONS.index(m.model_version or "")
                p_index = PRESET_VERSIONS.index(p.model_version or "")
                if result.params["target_lufs"] != pytest.approx(master_bias(m_index)[0]):
                    wrong.append(("master answer", (m, result.params)))
                if result.preset_scores["natural"] != pytest.approx(preset_bias(p_index)[0]):
                    wrong.append(("preset answer", (p, result.preset_scores)))
        except BaseException as exc:  # collected: a thread's exception must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert wrong == []
    assert counting_sessions.peak <= 5
    info = predictor.cache_info()
    assert len(info["sessions"]) <= 5
    assert info["alive"] == len(info["sessions"])  # every evicted session was freed
    assert counting_sessions.live == info["alive"]
    assert info["evictions"] > 0  # eight versions rotated through five sessions
    assert info["loads"] == len(counting_sessions.created)
    assert predictor.metrics.total == 8 * calls_per_thread * 2


def test_threads_get_the_answers_to_their_own_inputs(tmp_path: Path) -> None:
    """Each thread runs a session with its own bound buffers: no thread reads another's."""
    weight = np.zeros((INPUT_DIMS[MASTER_REG], len(MASTER_PARAM_NAMES)), np.float32)
    weight[0, 0] = 1.0  # target_lufs = -19.5 + the first feature
    model = affine_model(MASTER_REG, "v0", master_bias(0), weight=weight)
    predictor = open_bundle(build_bundle(tmp_path / "bundle", models={(MASTER_REG, "v0"): model}))
    barrier = threading.Barrier(8)
    wrong: list[tuple[float, float]] = []

    def work(t: int) -> None:
        x = X.copy()
        barrier.wait()
        for i in range(300):
            x[0] = 0.5 * t + 0.001 * i
            got = predictor.predict(x).params["target_lufs"]
            if got != pytest.approx(-19.5 + float(x[0]), abs=1e-5):
                wrong.append((float(x[0]), got))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert predictor.metrics.total == 8 * 300 * 2
    assert wrong == []


def test_concurrent_first_requests_load_each_model_once(
    tmp_path: Path, counting_sessions: type[CountingSession]
) -> None:
    predictor = open_bundle(build_bundle(tmp_path / "bundle"), preload=False)
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        predictor.predict(X)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counting_sessions.created) == ["master_reg/v0", "preset_cls/v0"]
