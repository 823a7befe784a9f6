"""Feature flags: defaults, the bundle's values, environment overrides."""

from __future__ import annotations

import logging

import pytest

from mixai_inference.flags import Flags, default_flags, env_var, parse_bool, resolve_flags
from mixai_inference.tasks import ALIGN_CONF, MASTER_REG, PRESET_CLS


def test_defaults_keep_ml_off_but_every_task_flag_on() -> None:
    flags = resolve_flags(None, {})
    assert flags == Flags()
    assert (
        flags.to_dict()
        == default_flags()
        == {
            "enable_cpu_ml": False,
            "enable_master_regression": True,
            "enable_preset_recommendation": True,
            "enable_align_confidence": True,
        }
    )
    assert flags.enable_cpu_ml is False
    assert not any(flags.ml_enabled(task) for task in (MASTER_REG, PRESET_CLS, ALIGN_CONF))


def test_a_task_needs_the_master_switch_and_its_own_flag() -> None:
    flags = Flags(enable_cpu_ml=True, enable_preset_recommendation=False)
    assert flags.ml_enabled(MASTER_REG)
    assert not flags.ml_enabled(PRESET_CLS)
    assert flags.ml_enabled(ALIGN_CONF)
    assert not Flags(enable_cpu_ml=False).ml_enabled(MASTER_REG)


def test_environment_overrides_the_bundle() -> None:
    bundle = {"enable_cpu_ml": True, "enable_align_confidence": False}
    assert resolve_flags(bundle, {}).enable_cpu_ml is True
    flags = resolve_flags(bundle, {"ENABLE_CPU_ML": "0", "ENABLE_ALIGN_CONFIDENCE": " Yes "})
    assert flags.enable_cpu_ml is False
    assert flags.enable_align_confidence is True
    assert env_var("enable_master_regression") == "ENABLE_MASTER_REGRESSION"


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True),
     ("false", False), ("0", False), ("No", False), (" off ", False)],
)  # fmt: skip
def test_parse_bool_accepts_the_documented_spellings(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def test_an_empty_variable_counts_as_unset() -> None:
    assert resolve_flags({"enable_cpu_ml": True}, {"ENABLE_CPU_ML": "  "}).enable_cpu_ml is True


def test_an_invalid_value_warns_and_keeps_the_bundle_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="mixai_inference.flags"):
        flags = resolve_flags({"enable_cpu_ml": True}, {"ENABLE_CPU_ML": "ture"})
    assert flags.enable_cpu_ml is True
    assert "ENABLE_CPU_ML" in caplog.text
    assert "'ture' is not a boolean" in caplog.text


def test_strict_resolution_raises_on_an_invalid_value() -> None:
    with pytest.raises(ValueError, match="ENABLE_PRESET_RECOMMENDATION: 'maybe'"):
        resolve_flags(None, {"ENABLE_PRESET_RECOMMENDATION": "maybe"}, strict=True)


def test_unknown_bundle_flags_raise() -> None:
    with pytest.raises(ValueError, match="unknown flag 'enable_gpu'"):
        resolve_flags({"enable_gpu": True}, {})


def test_os_environ_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENABLE_CPU_ML", "1")
    assert resolve_flags().enable_cpu_ml is True
