"""Benchmark of the demo world's mastering chain (results go to docs/benchmarks.md).

Run from the repository root with the project environment::

    .venv/bin/python benchmarks/bench_mastering.py [--duration 10] [--repeat 5]

``render_master`` renders every demo job's master, so ``make demo`` scales with it. Target: at
least 50x faster than real time (CPU time) on 44.1 kHz stereo music. It is measured side by
side with ``extract_features`` on the same audio in one process, and reported as a ratio too,
because absolute times on a shared 2-core machine move with the load.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mixai_inference import extract_features
from mixai_ml.dsp.mastering import MasteringParams, render_master

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "inference"))
from synthetic_audio import music

SR = 44100
PARAMS = MasteringParams(
    target_lufs=-9.0,
    eq_low_gain_db=3.0,
    eq_mid_gain_db=-2.0,
    eq_high_gain_db=2.0,
    comp_threshold_db=-14.0,
    comp_ratio=4.0,
    limiter_ceiling_dbtp=-1.0,
    stereo_width=1.2,
)


def cpu_seconds(run: Callable[[], object]) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of audio")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs (best counts)")
    args = parser.parse_args()
    audio = music(SR, args.duration).astype(np.float32)
    render_master(audio, SR, PARAMS)  # warm-up
    extract_features(audio, SR)
    master, features = [], []
    for _ in range(args.repeat):  # interleaved: both see the same load
        master.append(cpu_seconds(lambda: render_master(audio, SR, PARAMS)))
        features.append(cpu_seconds(lambda: extract_features(audio, SR)))
    best_master, best_features = min(master), min(features)
    print(f"{args.duration:g} s of stereo 44.1 kHz music, best of {args.repeat} (CPU time)")
    print(f"render_master:    {best_master:.3f} s  ({args.duration / best_master:.0f}x real time)")
    print(f"extract_features: {best_features:.3f} s  (reference)")
    print(f"ratio render_master / extract_features: {best_master / best_features:.2f}")
    verdict = "meets" if args.duration / best_master >= 50 else "misses"
    print(f"target >= 50x real time: {verdict}")


if __name__ == "__main__":
    main()
