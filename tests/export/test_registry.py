"""Registry transitions (promote, rollout, rollback) and the manifest built from the registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mixai_inference.bundle import read_manifest, sha256_bytes, write_bundle
from mixai_ml.export import registry
from mixai_ml.export.store import ModelStore

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def store(tmp_path: Path, task: str, version: str) -> registry.ExportedModel:
    """A fake model of ``task`` ``version`` in the store at ``tmp_path / "store"``."""
    content, uri = f"model {task} {version}".encode(), ModelStore.uri(task, version)
    ModelStore(tmp_path / "store").write({uri: content})
    return registry.ExportedModel(task, version, uri, sha256_bytes(content), {"mae_norm": 0.1})


def table(*models: registry.ExportedModel) -> pd.DataFrame:
    return pd.DataFrame(
        [registry.candidate_row(m, NOW + timedelta(minutes=i)) for i, m in enumerate(models)]
    )


def status(frame: pd.DataFrame) -> dict[str, tuple[str, float]]:
    return {row.version: (row.status, row.rollout_pct) for row in frame.itertuples()}


def test_promote_rollout_and_rollback(tmp_path: Path) -> None:
    frame = table(store(tmp_path, "master_reg", "v1"), store(tmp_path, "master_reg", "v2"))
    frame = registry.promote(frame, "master_reg", "v1", NOW)
    frame = registry.promote(frame, "master_reg", "v2", NOW + timedelta(days=1), rollout_pct=10)
    assert status(frame) == {"v1": ("retired", 0.0), "v2": ("active", 10.0)}
    frame = registry.set_rollout(frame, "master_reg", 60)
    assert status(frame)["v2"] == ("active", 60.0)
    frame = registry.rollback(frame, "master_reg", NOW + timedelta(days=2))
    assert status(frame) == {"v1": ("active", 100.0), "v2": ("retired", 0.0)}
    with pytest.raises(ValueError, match="no registered version 'v9'"):
        registry.promote(frame, "master_reg", "v9", NOW)
    with pytest.raises(ValueError, match="between 0 and 100"):
        registry.set_rollout(frame, "master_reg", 120)


def test_manifest_ships_active_models_and_resolvable_experiments(tmp_path: Path) -> None:
    frame = table(
        store(tmp_path, "master_reg", "v1"),
        store(tmp_path, "master_reg", "v2"),
        store(tmp_path, "preset_cls", "p1"),
    )
    frame = registry.promote(frame, "master_reg", "v1", NOW)
    frame = registry.promote(frame, "preset_cls", "p1", NOW)
    experiments = {
        "cand": {
            "task": "master_reg",
            "variants": {"control": "active", "treatment": "candidate"},
            "weights": {"control": 50, "treatment": 50},
            "coverage": 0.2,
        },
        "no-candidate": {
            "task": "preset_cls",
            "variants": {"control": "active", "treatment": "candidate"},
            "weights": {"control": 1, "treatment": 1},
        },
    }
    manifest, files = registry.build_manifest(
        frame, {"enable_cpu_ml": True}, experiments, NOW, ModelStore(tmp_path / "store")
    )
    write_bundle(tmp_path / "bundle", manifest, files)

    shipped = read_manifest(tmp_path / "bundle")
    assert shipped.tasks["master_reg"].active_version == "v1"
    assert sorted(shipped.tasks["master_reg"].models) == ["v1", "v2"]
    assert shipped.tasks["align_conf"].active_version is None
    assert list(shipped.experiments) == ["cand"]
    assert dict(shipped.experiments["cand"].variants) == {"control": "v1", "treatment": "v2"}


def test_a_tampered_or_missing_store_file_is_never_shipped(tmp_path: Path) -> None:
    model = store(tmp_path, "align_conf", "a1")
    frame = registry.promote(table(model), "align_conf", "a1", NOW)
    models = ModelStore(tmp_path / "store")
    assert registry.build_manifest(frame, {}, {}, NOW, models)[1] == {
        "align_conf-a1.onnx": b"model align_conf a1"
    }
    (tmp_path / "store" / model.uri).write_bytes(b"tampered")
    with pytest.raises(ValueError, match="no longer matches its registered sha256"):
        registry.build_manifest(frame, {}, {}, NOW, models)
    (tmp_path / "store" / model.uri).unlink()
    with pytest.raises(FileNotFoundError, match="has no such file"):
        registry.build_manifest(frame, {}, {}, NOW, models)


def test_the_store_is_immutable_and_stays_inside_its_folder(tmp_path: Path) -> None:
    models = ModelStore(tmp_path)
    models.write({"master_reg/v1.onnx": b"one"})
    models.write({"master_reg/v1.onnx": b"one"})  # the same bytes again: nothing to do
    with pytest.raises(ValueError, match="already stored with other bytes"):
        models.write({"master_reg/v1.onnx": b"two"})
    for uri in ("../v1.onnx", "/etc/passwd", "master_reg/../../x.onnx"):
        with pytest.raises(ValueError, match="not a model store URI"):
            models.read(uri)
    assert models.read("master_reg/v1.onnx", sha256_bytes(b"one")) == b"one"


def test_an_identical_retrain_is_recognised(tmp_path: Path) -> None:
    frame = table(store(tmp_path, "master_reg", "20260101000000-aaaa1111"))
    frame = registry.promote(frame, "master_reg", "20260101000000-aaaa1111", NOW)
    assert registry.same_weights(frame, "master_reg", "20260201000000-aaaa1111") == (
        "20260101000000-aaaa1111"
    )
    assert registry.same_weights(frame, "master_reg", "20260201000000-bbbb2222") is None
    assert registry.same_weights(frame, "preset_cls", "20260201000000-aaaa1111") is None


def _graph_with_metadata(name: str, **metadata: str) -> bytes:
    """A tiny ONNX graph (Identity) with the metadata an edge graph carries."""
    import onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], name, [value], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_the_bundle_ships_the_edge_graphs_under_their_sha256(tmp_path: Path) -> None:
    frame = registry.promote(table(store(tmp_path, "master_reg", "v1")), "master_reg", "v1", NOW)
    graphs = {
        "features": _graph_with_metadata(
            "f", supported_sample_rates="[22050, 44100, 48000]", feature_names='["a", "b"]'
        ),
        "alignment": _graph_with_metadata(
            "a", supported_sample_rates="[16000]", alignment_feature_names='["c"]'
        ),
    }
    manifest, files = registry.build_manifest(
        frame, {}, {}, NOW, ModelStore(tmp_path / "store"), graphs
    )
    write_bundle(tmp_path / "bundle", manifest, files)
    shipped = read_manifest(tmp_path / "bundle")
    assert shipped.edge["features"].file == "features.onnx"
    assert shipped.edge["features"].sample_rates == (22050, 44100, 48000)
    assert shipped.edge["features"].names == ("a", "b")
    assert shipped.edge["alignment"].sha256 == sha256_bytes(graphs["alignment"])
    assert (tmp_path / "bundle" / "alignment.onnx").read_bytes() == graphs["alignment"]
    with pytest.raises(ValueError, match="lacks the metadata"):
        registry.build_manifest(
            frame, {}, {}, NOW, ModelStore(tmp_path / "store"), {"features": graphs["alignment"]}
        )
