"""The runtime keeps its start-up heap out of the collector's sight, and a hot reload lets the
old bundle go (in process: the collector's state is the process's)."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
from service_support import FEATURES, serve_bundle

from mixai_inference.serve.runtime import Runtime
from mixai_inference.serve.settings import Settings
from mixai_inference.tasks import ALIGN_CONF, MASTER_REG, PRESET_CLS


@pytest.fixture(autouse=True)
def _thawed() -> object:
    yield
    gc.unfreeze()  # the rest of the suite runs with a normal collector


def test_start_freezes_and_a_reload_frees_the_old_bundle(
    bundle: Path, sqlite_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENABLE_CPU_ML", "true")
    settings = Settings.from_env(
        bundle, environ={"MIXAI_DB_URL": sqlite_db, "MIXAI_JOURNAL_DIR": str(tmp_path / "j")}
    )
    runtime = Runtime(settings)
    try:
        gc.unfreeze()
        runtime.start()
        assert gc.get_freeze_count() > 0
        old = weakref.ref(runtime.predictor)
        assert runtime.predictor.predict(FEATURES).to_dict()["target_lufs"] == -19.5

        serve_bundle(
            bundle,
            {MASTER_REG: ["w0", "w1", "w2"], PRESET_CLS: ["p0"], ALIGN_CONF: ["a0"]},
            active={MASTER_REG: "w2"},
        )
        assert runtime.reload_bundle()
        assert runtime.predictor.predict(FEATURES).to_dict()["target_lufs"] == -18.5
        assert old() is None  # frozen at start, yet collected after the swap
        assert gc.get_freeze_count() > 0
    finally:
        runtime.stop()
