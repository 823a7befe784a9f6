"""mixai-infer: the JSON of docs/data_contracts.md §8, readable summaries, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from bundle_factory import build_bundle, master_bias

from mixai_inference.cli import main
from mixai_inference.tasks import MASTER_PARAM_NAMES, MASTER_REG, PRESET_CLS, PRESETS

features = pytest.importorskip("mixai_inference.features")
SR = 44_100


def write_audio(path: Path, seconds: float = 4.0, delay_s: float = 0.0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    beat = (np.sin(2 * np.pi * 2 * t) > 0.95).astype(float)
    mono = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * rng.standard_normal(t.size) * beat
    shifted = np.concatenate([np.zeros(int(delay_s * SR)), mono])[: t.size]
    sf.write(path, np.stack([shifted, 0.9 * shifted], axis=1), SR)
    return path


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_audio(tmp_path_factory.mktemp("audio") / "mix.wav")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dims = {MASTER_REG: len(features.FEATURE_NAMES), PRESET_CLS: len(features.FEATURE_NAMES)}
    return build_bundle(
        tmp_path_factory.mktemp("models") / "bundle",
        {MASTER_REG: ["v0"], PRESET_CLS: ["v0"]},
        schema=features.FEATURE_SCHEMA_VERSION,
        input_dims=dims,
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_json_object(text: str) -> dict[str, Any]:
    assert text.count("\n") == 1  # exactly one line: one object
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def test_features_json_is_the_extractors_vector(
    capsys: pytest.CaptureFixture[str], mix: Path
) -> None:
    code, out, _ = run(capsys, "features", str(mix), "--json")
    assert code == 0
    output = one_json_object(out)
    assert output["feature_schema_version"] == features.FEATURE_SCHEMA_VERSION
    audio, sr = sf.read(mix, dtype="float32", always_2d=True)
    expected = features.extract_features(audio.T, sr)
    assert list(output["features"]) == list(features.FEATURE_NAMES)
    np.testing.assert_array_equal(np.float32(list(output["features"].values())), expected)


def test_predict_json_holds_parameters_preset_and_provenance(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    mix: Path,
    bundle: Path,
) -> None:
    monkeypatch.delenv("ENABLE_CPU_ML", raising=False)
    code, out, _ = run(
        capsys, "predict", str(mix), "--bundle", str(bundle), "--user-id", "u1", "--json"
    )
    assert code == 0
    output = one_json_object(out)
    assert [output[name] for name in MASTER_PARAM_NAMES] == pytest.approx(master_bias(0))
    assert output["preset"] in PRESETS
    assert output[MASTER_REG] == {
        "source": "ml",
        "model_version": "v0",
        "variant": None,
        "experiment_id": None,
        "reason": None,
        "ood_score": None,  # the bundle has no training references
        "ood": False,
        "personalized": False,
    }
    monkeypatch.setenv("ENABLE_CPU_ML", "0")
    code, out, _ = run(capsys, "predict", str(mix), "--bundle", str(bundle), "--json")
    assert one_json_object(out)[PRESET_CLS]["reason"] == "disabled"


def test_predict_with_a_missing_bundle_answers_from_the_rules(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    mix: Path,
    tmp_path: Path,
) -> None:
    code, out, _ = run(capsys, "predict", str(mix), "--bundle", str(tmp_path / "none"), "--json")
    assert code == 0
    output = one_json_object(out)
    assert output[MASTER_REG]["source"] == "rules"
    assert output[MASTER_REG]["reason"] == "bundle_unavailable"
    assert "bundle unavailable" in caplog.text


def test_readable_summary(capsys: pytest.CaptureFixture[str], mix: Path, bundle: Path) -> None:
    code, out, _ = run(capsys, "predict", str(mix), "--bundle", str(bundle))
    assert code == 0
    assert "mastering parameters (ml, model v0)" in out
    assert "target_lufs" in out
    assert "preset: " in out
    code, out, _ = run(capsys, "features", str(mix))
    assert f"{len(features.FEATURE_NAMES)} features" in out


@pytest.mark.parametrize("content", [None, b"this is not audio"])
def test_unusable_audio_exits_2_with_the_message_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "song.wav"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run(capsys, "features", str(path), "--json")
    assert (code, out) == (2, "")
    assert err.startswith("mixai-infer: ")
    assert "song.wav" in err
    assert "Traceback" not in err


def test_installed_command_runs_in_a_fresh_process(mix: Path, bundle: Path) -> None:
    command = Path(sys.executable).with_name("mixai-infer")
    if not command.exists():
        pytest.skip("mixai-infer is not installed in this environment")
    done = subprocess.run(
        [str(command), "predict", str(mix), "--bundle", str(bundle), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[MASTER_REG]["model_version"] == "v0"
    missing = subprocess.run(
        [str(command), "features", "/nonexistent/a.wav"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr


def test_align_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("mixai_inference.alignment")
    vocal = write_audio(tmp_path / "vocal.wav", delay_s=0.25, seed=1)
    instrumental = write_audio(tmp_path / "inst.wav", seed=1)
    code, out, _ = run(capsys, "align", str(vocal), str(instrumental), "--json")
    assert code == 0
    output = one_json_object(out)
    assert output["offset_ms"] == pytest.approx(-250.0, abs=20.0)  # the vocal starts late
    assert 0.0 <= output["confidence"] <= 1.0
    assert (output["align_conf"]["source"], output["align_conf"]["reason"]) == (
        "rules",
        "no_bundle",
    )
