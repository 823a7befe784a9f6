"""Benchmark of mixai_inference feature extraction (results go to docs/benchmarks.md).

Run from the repository root with the project environment::

    .venv/bin/python benchmarks/bench_features.py            # all three parts
    .venv/bin/python benchmarks/bench_features.py --only speed --duration 180

(a) speed: ``extract_features`` against (1) librosa + pyloudnorm computing the same families
    from ONE shared STFT, and (2) plain per-feature librosa calls (each recomputing its STFT),
    side by side in one process on stereo 44.1 kHz synthetic music: ``--repeat`` interleaved
    runs each after warming up librosa's numba JIT; best and median. Target: >= 4x faster
    than (1).
(b) cold start: a fresh interpreter imports mixai_inference, decodes a 30 s stereo 44.1 kHz
    WAV and extracts its features. Target: <= 1.0 s.
(c) peak memory: a fresh interpreter loads and extracts a file of the maximum supported
    duration (``MAX_DURATION_S``); reports its peak RSS.
(d) deviation: the largest deviation of every family from librosa / pyloudnorm on the demo
    audio (``data/01_raw/**/mix.flac`` after ``make demo``, else one song per demo style).

The synthetic music is ``tests/inference/synthetic_audio.music`` (drums, bass, chords).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
import pyloudnorm
import scipy.signal
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "inference"))

from synthetic_audio import music  # noqa: E402

from mixai_inference import FEATURE_CONFIG, FEATURE_NAMES, extract_features  # noqa: E402
from mixai_inference.audio import MAX_DURATION_S  # noqa: E402

SR = 44100
CFG = FEATURE_CONFIG
STFT = {k: CFG[k] for k in ("n_fft", "hop_length", "win_length", "window", "center", "pad_mode")}


def _stats(frames: np.ndarray) -> np.ndarray:
    return np.stack([frames.mean(-1), frames.std(-1), frames.min(-1), frames.max(-1)])


def _pyloudnorm_measures(audio: np.ndarray, sr: int) -> list[float]:
    """Integrated, momentary max, short-term max, LRA (pyloudnorm) and 4x true peak (scipy)."""
    data = audio.T.astype(np.float64)
    meter = pyloudnorm.Meter(sr, filter_class="DeMan")
    integrated = meter.integrated_loudness(data)
    momentary_max = max(meter.blockwise_loudness)
    short_term = pyloudnorm.Meter(sr, filter_class="DeMan", block_size=3.0, overlap=29 / 30)
    short_term.integrated_loudness(data)
    lra = meter.loudness_range(data)
    true_peak = 20 * np.log10(np.abs(scipy.signal.resample_poly(data, 4, 1, axis=0)).max())
    return [integrated, momentary_max, max(short_term.blockwise_loudness), lra, true_peak]


def _numpy_extras(audio: np.ndarray, power: np.ndarray, freq: np.ndarray) -> list[float]:
    """Sample peak, crest factor, L/R correlation and width, band energies (plain numpy)."""
    left, right = audio.astype(np.float64)
    peak = np.abs(audio).max()
    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    correlation = np.dot(left, right) / np.sqrt(np.dot(left, left) * np.dot(right, right))
    side = np.mean((left - right) ** 2) / (np.mean((left - right) ** 2 + (left + right) ** 2))
    band = np.searchsorted(CFG["band_edges_hz"], freq, side="right")
    energy = np.bincount(band, weights=power.sum(axis=1), minlength=3)
    return [20 * np.log10(peak), 20 * np.log10(peak / rms), correlation, side, *energy]


def librosa_shared_stft(audio: np.ndarray, sr: int) -> np.ndarray:
    """The same families with librosa from one STFT (what a careful librosa user writes)."""
    rate = CFG["sample_rate"]
    y = librosa.resample(librosa.to_mono(audio), orig_sr=sr, target_sr=rate, res_type="soxr_hq")
    magnitude = np.abs(librosa.stft(y, **STFT))
    power = magnitude**2
    log_mel = librosa.power_to_db(
        librosa.feature.melspectrogram(S=power, sr=rate, n_mels=CFG["n_mels"])
    )
    onset = librosa.onset.onset_strength(
        S=log_mel, sr=rate, lag=CFG["lag"], max_size=CFG["max_size"], n_fft=CFG["n_fft"]
    )
    rhythm = {"sr": rate, "hop_length": CFG["hop_length"], "start_bpm": CFG["start_bpm"]}
    tempo = librosa.feature.tempo(onset_envelope=onset, **rhythm)
    _, beats = librosa.beat.beat_track(onset_envelope=onset, bpm=tempo[0], **rhythm)
    frame = {"frame_length": CFG["frame_length"], "hop_length": CFG["hop_length"]}
    families = [
        librosa.feature.spectral_centroid(S=magnitude, sr=rate),
        librosa.feature.spectral_bandwidth(S=magnitude, sr=rate),
        librosa.feature.spectral_rolloff(S=magnitude, sr=rate, roll_percent=CFG["roll_percent"]),
        onset[np.newaxis],
        librosa.feature.spectral_contrast(
            S=magnitude, sr=rate, fmin=CFG["fmin"], n_bands=CFG["n_bands"]
        ),
        librosa.feature.zero_crossing_rate(y, **frame),
        librosa.feature.rms(y=y, **frame),
        onset[np.newaxis, beats],
        librosa.feature.mfcc(S=log_mel, n_mfcc=CFG["n_mfcc"]),
        librosa.feature.chroma_stft(S=power, sr=rate, tuning=CFG["tuning"]),
    ]
    freq = librosa.fft_frequencies(sr=rate, n_fft=CFG["n_fft"])
    return np.concatenate(
        [
            *(_stats(f).T.ravel() for f in families),
            tempo,
            _pyloudnorm_measures(audio, sr),
            _numpy_extras(audio, power, freq),
        ]
    )


def librosa_per_feature(audio: np.ndarray, sr: int) -> np.ndarray:
    """Plain per-feature librosa calls, each computing its own STFT from the signal."""
    rate = CFG["sample_rate"]
    y = librosa.resample(librosa.to_mono(audio), orig_sr=sr, target_sr=rate, res_type="soxr_hq")
    frame = {"frame_length": CFG["frame_length"], "hop_length": CFG["hop_length"]}
    onset = librosa.onset.onset_strength(y=y, sr=rate, **STFT)
    _, beats = librosa.beat.beat_track(y=y, sr=rate, hop_length=CFG["hop_length"])
    families = [
        librosa.feature.spectral_centroid(y=y, sr=rate, **STFT),
        librosa.feature.spectral_bandwidth(y=y, sr=rate, **STFT),
        librosa.feature.spectral_rolloff(y=y, sr=rate, **STFT),
        onset[np.newaxis],
        librosa.feature.spectral_contrast(y=y, sr=rate, **STFT),
        librosa.feature.zero_crossing_rate(y, **frame),
        librosa.feature.rms(y=y, **frame),
        onset[np.newaxis, beats],
        librosa.feature.mfcc(y=y, sr=rate, n_mfcc=CFG["n_mfcc"], **STFT),
        librosa.feature.chroma_stft(y=y, sr=rate, tuning=CFG["tuning"], **STFT),
    ]
    power = np.abs(librosa.stft(y, **STFT)) ** 2
    freq = librosa.fft_frequencies(sr=rate, n_fft=CFG["n_fft"])
    return np.concatenate(
        [
            *(_stats(f).T.ravel() for f in families),
            librosa.feature.tempo(y=y, sr=rate),
            _pyloudnorm_measures(audio, sr),
            _numpy_extras(audio, power, freq),
        ]
    )


def bench_speed(duration_s: float, repeat: int) -> dict[str, float]:
    """Best and median of ``repeat`` interleaved runs of each computation."""
    audio = music(SR, duration_s, seed=1)
    methods: dict[str, Callable[[np.ndarray, int], object]] = {
        "mixai_inference": extract_features,
        "librosa_shared_stft": librosa_shared_stft,
        "librosa_per_feature": librosa_per_feature,
    }
    warm = music(SR, 10.0, seed=2)
    for function in methods.values():
        function(warm, SR)  # numba JIT, filterbank caches
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeat):  # interleaved, so that load changes hit every method alike
        for name, function in methods.items():
            start = time.perf_counter()
            function(audio, SR)
            times[name].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in times.items()}
    median = {name: float(np.median(values)) for name, values in times.items()}
    ours = "mixai_inference"
    return {
        "duration_s": duration_s,
        **{f"{name}_best_s": value for name, value in best.items()},
        **{f"{name}_median_s": value for name, value in median.items()},
        "speedup_vs_shared_best": best["librosa_shared_stft"] / best[ours],
        "speedup_vs_shared_median": median["librosa_shared_stft"] / median[ours],
        "speedup_vs_per_feature_best": best["librosa_per_feature"] / best[ours],
        "speedup_vs_per_feature_median": median["librosa_per_feature"] / median[ours],
        "realtime_factor": duration_s / best[ours],
    }


_COLD_START = """
import time
start = time.perf_counter()
import mixai_inference
imported = time.perf_counter()
audio, sr = mixai_inference.load_audio({path!r})
decoded = time.perf_counter()
mixai_inference.extract_features(audio, sr)
done = time.perf_counter()
print({{"import_s": imported - start, "decode_s": decoded - imported, "extract_s": done - decoded}})
"""

_PEAK_MEMORY = """
import re
from pathlib import Path
import mixai_inference

def high_water_mb():  # VmHWM: peak RSS of this program (ru_maxrss would include the parent's)
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024

after_import = high_water_mb()
audio, sr = mixai_inference.load_audio({path!r})
mixai_inference.extract_features(audio, sr)
print({{"after_import_mb": after_import, "peak_mb": high_water_mb(),
       "audio_mb": audio.nbytes / 2**20}})
"""


def _run_child(code: str) -> tuple[dict[str, float], float]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    return json.loads(result.stdout.strip().replace("'", '"')), wall


def bench_cold_start(repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "song.wav")
        sf.write(path, music(SR, 30.0, seed=3).T, SR, subtype="PCM_16")
        runs = [_run_child(_COLD_START.format(path=path)) for _ in range(repeat)]
    parts, wall = min(runs, key=lambda run: run[1])
    return {
        **parts,
        "process_wall_s": wall,
        "median_process_wall_s": float(np.median([w for _, w in runs])),
    }


def bench_peak_memory() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "longest.wav")
        sf.write(path, music(SR, MAX_DURATION_S, seed=4).T, SR, subtype="PCM_16")
        parts, wall = _run_child(_PEAK_MEMORY.format(path=path))
    return {"duration_s": MAX_DURATION_S, **parts, "process_wall_s": wall}


def _demo_mixes(duration_s: float) -> list[tuple[str, np.ndarray, int]]:
    """The demo audio: ``data/01_raw/**/mix.flac`` when ``make demo`` has run, otherwise one
    song per style rendered by the demo world's synthesizer (drums + music + vocal)."""
    files = sorted((ROOT / "data" / "01_raw").glob("**/mix.flac"))[:12]
    if files:
        return [
            (path.parent.name, *sf.read(path, dtype="float32", always_2d=True)) for path in files
        ]
    from mixai_ml.simulation.styles import STYLES
    from mixai_ml.simulation.synth import draw_song_spec, render_song

    rng = np.random.default_rng(7)
    mixes = []
    for name, style in STYLES.items():
        song = render_song(draw_song_spec(style, duration_s, rng), SR, rng)
        mix = song.drums + song.music + song.vocal
        mixes.append((name, (0.9 * mix / np.abs(mix).max()).T.astype(np.float32), SR))
    return mixes


def bench_deviation(duration_s: float) -> dict[str, object]:
    """Largest deviation of each feature family from librosa / pyloudnorm on the demo audio.

    Spectral families: relative to the family's largest absolute statistic on that song;
    loudness and peaks: absolute, in LU / dB.
    """
    from librosa_oracle import librosa_families

    names = list(FEATURE_NAMES)
    worst: dict[str, float] = {}
    songs = _demo_mixes(duration_s)
    for _, frames_first, sr in songs:
        audio = np.ascontiguousarray(frames_first.T)
        ours = dict(zip(names, extract_features(audio, sr).tolist(), strict=True))
        for family, frames in librosa_families(audio, sr).items():
            expected = np.stack([frames.mean(0), frames.std(0), frames.min(0), frames.max(0)], 1)
            if family == "tempo_bpm":
                actual = np.array([[ours["tempo_bpm"]]])
                expected = expected[:, :1]
            else:
                width = 1 if family == "spectral_contrast" else 2
                columns = [
                    [
                        f"{family}_{k:0{width}d}_{stat}"
                        if frames.shape[1] > 1
                        else f"{family}_{stat}"
                        for stat in ("mean", "std", "min", "max")
                    ]
                    for k in range(frames.shape[1])
                ]
                actual = np.array([[ours[name] for name in row] for row in columns])
            scale = max(float(np.abs(expected).max()), 1e-12)
            deviation = float(np.abs(actual - expected).max()) / scale
            worst[family] = max(worst.get(family, 0.0), deviation)
        integrated, momentary, short_term, lra, true_peak = _pyloudnorm_measures(audio, sr)
        for name, expected_value in (
            ("loudness_integrated_lufs", integrated),
            ("loudness_momentary_max_lufs", momentary),
            ("loudness_short_term_max_lufs", short_term),
            ("loudness_range_lu", lra),
            ("true_peak_dbtp", true_peak),
            ("sample_peak_dbfs", 20 * np.log10(np.abs(audio).max())),
        ):
            deviation = abs(ours[name] - float(expected_value))
            worst[name] = max(worst.get(name, 0.0), deviation)
    return {"songs": [name for name, _, _ in songs], "max_deviation": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["speed", "cold", "memory", "deviation"], action="append")
    parser.add_argument("--duration", type=float, default=180.0, help="speed test audio, s")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    parts = args.only or ["speed", "cold", "memory", "deviation"]
    report: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "cpus": os.cpu_count(),
        "load_average_1min_before": os.getloadavg()[0],
        "numpy": np.__version__,
        "librosa": librosa.__version__,
    }
    if "speed" in parts:
        report["speed"] = bench_speed(args.duration, args.repeat)
    if "cold" in parts:
        report["cold_start"] = bench_cold_start(max(args.repeat, 5))
    if "memory" in parts:
        report["peak_memory"] = bench_peak_memory()
    if "deviation" in parts:
        report["deviation"] = bench_deviation(30.0)
    report["load_average_1min_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
