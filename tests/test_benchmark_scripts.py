"""Every benchmark script starts: its imports and arguments are what docs/benchmarks.md runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("bench_*.py"))


def test_there_are_benchmarks() -> None:
    assert len(BENCHMARKS) >= 8


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda path: path.stem)
def test_the_script_starts(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:"), done.stdout[:200]


def test_the_ab_floor_groups_every_users_sums(tmp_path: Path) -> None:
    """``--floor`` groups the history by variant, metric and first day: 2 × 5 × 27 groups (the
    pre-period rows, a week before each assignment, span as many days)."""
    sys.path.insert(0, str(BENCHMARKS[0].parent))
    try:
        import bench_ab_analysis as bench
    finally:
        sys.path.pop(0)
    from mixai_ml.db import get_engine

    url = f"sqlite:///{tmp_path / 'ab.db'}"
    engine = get_engine(url)
    bench.load_sqlite(engine, users=3_000, seed=1, pre=True)
    engine.dispose()
    assert bench.floor(url)["groups"] == 2 * 5 * (bench.DAYS - 1)
