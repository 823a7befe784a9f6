"""The bundle format: manifest round trip, validation, hashing and the atomic write."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from bundle_factory import SCHEMA, affine_model, build_bundle, master_bias, model_entry

from mixai_inference.bundle import (
    MANIFEST_NAME,
    BundleError,
    Experiment,
    Manifest,
    TaskEntry,
    read_manifest,
    sha256_bytes,
    sha256_file,
    write_bundle,
)
from mixai_inference.tasks import MASTER_REG, PRESET_CLS


def _manifest_and_files(**changes: Any) -> tuple[Manifest, dict[str, bytes]]:
    data = affine_model(MASTER_REG, "v1", master_bias(1))
    entry = model_entry(MASTER_REG, "v1", data)
    fields: dict[str, Any] = {
        "feature_schema_version": SCHEMA,
        "tasks": {MASTER_REG: TaskEntry(active_version="v1", models={"v1": entry})},
        "flags": {"enable_cpu_ml": True},
        "created_at": "2025-01-10T03:00:00Z",
    }
    fields.update(changes)
    return Manifest(**fields), {entry.file: data}


def test_sha256_helpers_match_the_known_answer(tmp_path: Path) -> None:
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2
    assert sha256_bytes(b"abc") == abc
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f", chunk_size=1) == abc


def test_manifest_round_trips_through_the_bundle(tmp_path: Path) -> None:
    experiment = Experiment(
        "exp-1", MASTER_REG, {"control": "v1", "rules": None}, {"control": 3, "rules": 1}, 0.3, "s"
    )
    manifest, files = _manifest_and_files(experiments={"exp-1": experiment})
    write_bundle(tmp_path / "bundle", manifest, files)
    assert read_manifest(tmp_path / "bundle") == manifest
    raw = json.loads((tmp_path / "bundle" / MANIFEST_NAME).read_text())
    assert raw["format_version"] == 1
    assert raw["tasks"][MASTER_REG]["models"]["v1"]["input_name"] == "features"
    assert raw["experiments"]["exp-1"]["weights"] == {"control": 3, "rules": 1}
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == [
        "manifest.json",
        "master_reg-v1.onnx",
    ]


def test_a_new_bundle_replaces_the_old_one_completely(tmp_path: Path) -> None:
    target = build_bundle(tmp_path / "bundle", {MASTER_REG: ["old"], PRESET_CLS: ["old"]})
    build_bundle(target, {MASTER_REG: ["new"]})
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "master_reg-new.onnx"]
    assert list(read_manifest(target).tasks) == [MASTER_REG]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no temp or old folders left


def test_a_failed_write_leaves_the_old_bundle_untouched(tmp_path: Path) -> None:
    target = build_bundle(tmp_path / "bundle", {MASTER_REG: ["old"]})
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    manifest, files = _manifest_and_files()
    with pytest.raises(BundleError, match="sha256"):
        write_bundle(target, manifest, {name: b"not the model" for name in files})
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_a_failed_swap_puts_the_old_bundle_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = build_bundle(tmp_path / "bundle", {MASTER_REG: ["old"]})
    real_rename = os.rename

    def rename(src: Any, dst: Any) -> None:
        if Path(src).name.startswith(".bundle.tmp-"):
            raise OSError("disk full")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    manifest, files = _manifest_and_files()
    with pytest.raises(OSError, match="disk full"):
        write_bundle(target, manifest, files)
    assert read_manifest(target).tasks[MASTER_REG].active_version == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_every_file_is_fsynced_before_the_swap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    manifest, files = _manifest_and_files()
    write_bundle(tmp_path / "bundle", manifest, files)
    assert len(synced) >= len(files) + 1 + 2  # files, manifest, staging folder, parent


def test_files_may_be_given_as_paths(tmp_path: Path) -> None:
    manifest, files = _manifest_and_files()
    ((name, data),) = files.items()
    (tmp_path / "model.onnx").write_bytes(data)
    write_bundle(tmp_path / "bundle", manifest, {name: tmp_path / "model.onnx"})
    assert (tmp_path / "bundle" / name).read_bytes() == data


def test_files_must_match_the_manifest(tmp_path: Path) -> None:
    manifest, files = _manifest_and_files()
    with pytest.raises(BundleError, match="missing"):
        write_bundle(tmp_path / "b", manifest, {})
    with pytest.raises(BundleError, match="not listed"):
        write_bundle(tmp_path / "b", manifest, {**files, "extra.onnx": b"x"})


def _raw_manifest(tmp_path: Path) -> dict[str, Any]:
    build_bundle(tmp_path / "bundle", {MASTER_REG: ["v1", "v2"]})
    return json.loads((tmp_path / "bundle" / MANIFEST_NAME).read_text())


def _set(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        ("format_version", 2, "newer"),
        ("feature_schema_version", 1, "feature_schema_version: expected str"),
        ("flags.enable_gpu", True, "unknown flags"),
        ("flags.enable_cpu_ml", "yes", "expected true or false"),
        ("tasks.master_reg.models.v1.rollout_pct", True, "rollout_pct: expected int or float"),
        ("tasks.master_reg.models.v1.rollout_pct", 150, r"rollout_pct must be in \[0, 100\]"),
        ("tasks.master_reg.models.v1.rollout_pct", 10**400, "rollout_pct: expected a finite"),
        ("tasks.master_reg.models.v1.sha256", "ABC", "64 lowercase hex"),
        ("tasks.master_reg.models.v1.file", "../escape.onnx", "plain file name"),
        ("tasks.master_reg.models.v2.file", "master_reg-v1.onnx", "listed twice"),
        ("tasks.master_reg.models.v1.status", "live", "status must be one of"),
        ("tasks.master_reg.models.v1.output_dim", 7, "I/O must be"),
        ("tasks.master_reg.models.v1.output_name", "probabilities", "I/O must be"),
        ("tasks.master_reg.active_version", "v2", "exactly the active version"),
        ("tasks.speech_rec", {"models": {}}, "unknown task"),
        (
            "experiments.e",
            {"task": "master_reg", "variants": {"a": "v9"}, "weights": {"a": 1}},
            "not in the bundle",
        ),
        (
            "experiments.e",
            {"task": "master_reg", "variants": {"a": "v1"}, "weights": {"b": 1}},
            "weights",
        ),
        (
            "experiments.e",
            {"task": "master_reg", "variants": {"a": "v1"}, "weights": {"a": 0}},
            "not all zero",
        ),
        (
            "experiments.e",
            {"task": "master_reg", "variants": {"ä": "v1"}, "weights": {"ä": 1}},
            "variant names",
        ),
        (
            "experiments.e",
            {"task": "master_reg", "variants": {"a": "v1"}, "weights": {"a": 1}, "coverage": 2},
            "coverage",
        ),
    ],
)
def test_invalid_manifests_are_refused_with_the_field_named(
    tmp_path: Path, dotted: str, value: Any, message: str
) -> None:
    raw = _set(_raw_manifest(tmp_path), dotted, value)
    (tmp_path / "bundle" / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(BundleError, match=message):
        read_manifest(tmp_path / "bundle")


def test_missing_or_broken_manifests_raise_bundle_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="cannot read"):
        read_manifest(tmp_path / "nowhere")
    (tmp_path / MANIFEST_NAME).write_text('{"format_version": 1,')
    with pytest.raises(BundleError, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("[]")
    with pytest.raises(BundleError, match="manifest: expected dict"):
        read_manifest(tmp_path)


def test_edge_graphs_are_listed_verified_and_optional(tmp_path: Path) -> None:
    from mixai_inference.bundle import EdgeGraph

    graph = b"an onnx graph"
    edge = {"features": EdgeGraph("features.onnx", sha256_bytes(graph), (44100, 48000), ("a",))}
    manifest, files = _manifest_and_files(edge=edge)
    write_bundle(tmp_path / "bundle", manifest, {**files, "features.onnx": graph})
    assert read_manifest(tmp_path / "bundle") == manifest
    raw = json.loads((tmp_path / "bundle" / MANIFEST_NAME).read_text())
    assert raw["edge"]["features"]["sample_rates"] == [44100, 48000]
    with pytest.raises(BundleError, match="missing"):
        write_bundle(tmp_path / "other", manifest, files)
    with pytest.raises(BundleError, match="sha256"):
        write_bundle(tmp_path / "other", manifest, {**files, "features.onnx": b"tampered"})
    # a manifest written before edge graphs existed still reads, with none
    del raw["edge"]
    (tmp_path / "bundle" / MANIFEST_NAME).write_text(json.dumps(raw))
    assert read_manifest(tmp_path / "bundle").edge == {}


@pytest.mark.parametrize(
    ("edge", "message"),
    [
        ({"features": ("master_reg-v1.onnx", (44100,), ("a",))}, "listed twice"),
        ({"features": ("../x.onnx", (44100,), ("a",))}, "plain file name"),
        ({"features": ("f.onnx", (), ("a",))}, "sample_rates"),
        ({"features": ("f.onnx", (44100,), ())}, "names"),
        ({"bad name": ("f.onnx", (44100,), ("a",))}, "name must match"),
    ],
)
def test_bad_edge_entries_are_refused(edge: dict[str, Any], message: str) -> None:
    from mixai_inference.bundle import EdgeGraph

    entries = {
        name: EdgeGraph(file, sha256_bytes(b"x"), rates, names)
        for name, (file, rates, names) in edge.items()
    }
    with pytest.raises(BundleError, match=message):
        _manifest_and_files(edge=entries)
