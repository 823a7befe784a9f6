"""Benchmark of the edge graphs (features.onnx, alignment.onnx); results go to
docs/features.md ("In the browser") and docs/benchmarks.md.

Run from the repository root with the project environment::

    .venv/bin/python benchmarks/bench_edge_features.py                  # every part
    .venv/bin/python benchmarks/bench_edge_features.py --only speed --repeat 7

(a) deviation: the graph (onnxruntime, fed the very PCM ``extract_features`` analyses)
    against ``extract_features`` / ``estimate_alignment``, family by family, on the test
    suite's synthetic clips (``tests/inference/synthetic_audio.py``) at 22.05, 44.1 and
    48 kHz, mono and stereo, and on the demo audio (``data/01_raw/**`` after ``make demo``,
    or ``--demo-dir``).
(b) resampling: how far the features move when the 22.05 kHz input comes from another
    resampler than soxr HQ (a browser's), on the same clips: scipy's polyphase resampler
    and soxr's low-quality setting bracket what a browser does.
(c) speed: one 30 s stereo 44.1 kHz clip, ``extract_features`` against the graph built with
    each STFT implementation and precision (onnxruntime, 1 thread, interleaved runs after a
    warm-up, best and median), and a 30 s pair through both aligners.
(d) sizes: each graph's file size, raw and gzip-compressed.
(e) memory: peak RSS of a fresh process running the feature graph on the longest accepted
    file (600 s stereo 44.1 kHz) against ``extract_features`` on it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import scipy.signal
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "inference"))

from synthetic_audio import (  # noqa: E402
    chirp,
    click_track,
    music,
    noise,
    sine,
    tone_sequence,
    vocal_pair,
)

from mixai_inference import FEATURE_NAMES, extract_features  # noqa: E402
from mixai_inference.alignment import ALIGNMENT_FEATURE_NAMES, estimate_alignment  # noqa: E402
from mixai_ml.edge import build_alignment_graph, build_feature_graph  # noqa: E402
from mixai_ml.edge._dsp import STFT_METHODS, STFT_PRECISIONS  # noqa: E402
from mixai_ml.edge.parity import (  # noqa: E402
    ALIGNMENT_FAMILIES,
    FEATURE_FAMILIES,
    FeatureGraphs,
    deviation_table,
    deviations,
    soxr_mono,
)

RATES = (22050, 44100, 48000)
# measured on the original-rate audio, whatever the resampler
_NATIVE_FAMILIES = ("stereo", "loudness", "true peak", "sample peak")


def synthetic_clips(sr: int) -> Iterator[tuple[str, np.ndarray]]:
    """The suite's signals (stereo), 6-12 s: music, noise, tones, clicks, silence-padded."""
    yield "music", music(sr, 12.0, seed=1)
    yield "music-fast", music(sr, 11.0, bpm=150.0, seed=2)
    yield "noise", noise(sr, 6.0)
    yield "sine", sine(440.0, sr, 6.0)
    yield "chirp", chirp(sr, 6.0)
    yield "tones", tone_sequence([(-20.0, 2.0), (-40.0, 2.0), (-10.0, 2.0)], sr)
    for bpm in (90.0, 128.0):
        yield f"clicks-{bpm:g}", np.tile(click_track(bpm, sr, 10.0), (2, 1))
    pad = np.zeros((2, 2 * sr), dtype=np.float32)
    yield "padded-music", np.concatenate([pad, music(sr, 5.0, seed=3), pad], axis=1)


def _variants(audio: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    yield "stereo", audio
    yield "mono", audio[:1]


def demo_files(demo_dir: Path | None, limit: int) -> list[Path]:
    roots = [demo_dir] if demo_dir else [ROOT / "data" / "01_raw"]
    for root in roots:
        files = sorted(root.glob("**/mix.flac"))[:limit]
        if files:
            return files
    return []


def bench_deviation(graphs: FeatureGraphs, demo_dir: Path | None, n_demo: int) -> dict[str, object]:
    """Per family: the graph fed the very 22.05 kHz signal ``extract_features`` analyses
    ("identical PCM": the graph alone) and the graph resampling by itself ("own
    resampling": what a browser gets), against ``extract_features``."""
    sets: dict[str, list[tuple[str, np.ndarray, int]]] = {"synthetic": [], "demo": []}
    for sr in RATES:
        for name, clip in synthetic_clips(sr):
            for layout, audio in _variants(clip):
                sets["synthetic"].append((f"{name}/{layout}/{sr}", audio, sr))
    for path in demo_files(demo_dir, n_demo):
        data, sr = sf.read(path, dtype="float32", always_2d=True)
        sets["demo"].append((path.parent.name, np.ascontiguousarray(data.T), sr))
    report: dict[str, object] = {"clips": {k: [c[0] for c in v] for k, v in sets.items()}}
    given_pcm = FeatureGraphs(build_feature_graph(resampled_input=True))
    for set_name, clips in sets.items():
        if not clips:
            continue
        labels = [label for label, _, _ in clips]
        reference = np.array([extract_features(audio, sr) for _, audio, sr in clips])
        for mode in ("identical_pcm", "own_resampling"):
            graph = np.array(
                [
                    given_pcm.features(audio, sr, soxr_mono(audio, sr))
                    if mode == "identical_pcm"
                    else graphs.features(audio, sr)
                    for _, audio, sr in clips
                ]
            )
            rows = deviations(graph, reference)
            report[f"{set_name}_{mode}"] = {
                "rows": _rows(rows),
                "table": deviation_table(rows),
                "worst": _worst(graph, reference, labels),
            }

    align_graph, align_reference, align_labels = [], [], []
    for path in demo_files(demo_dir, n_demo):
        stems = [
            np.ascontiguousarray(sf.read(path.parent / f, dtype="float32", always_2d=True)[0].T)
            for f in ("vocal.flac", "inst.flac")
        ]
        sr = sf.info(path).samplerate
        align_graph.append(graphs.alignment(*stems, sr)[0])
        align_reference.append(estimate_alignment(*stems, sr).features)
        align_labels.append(path.parent.name)
    for sr in (16000, 44100, 48000):
        for offset in (0.0, 37.0, -480.0, 1234.0):
            vocal, inst = vocal_pair(sr, 10.0, offset, seed=int(offset) % 7)
            align_graph.append(graphs.alignment(vocal, inst, sr)[0])
            align_reference.append(estimate_alignment(vocal, inst, sr).features)
            align_labels.append(f"pair {offset:g} ms/{sr}")
    alignment = deviations(
        np.array(align_graph),
        np.array(align_reference),
        ALIGNMENT_FAMILIES,
        ALIGNMENT_FEATURE_NAMES,
    )
    report["alignment"] = {
        "pairs": align_labels,
        "rows": _rows(alignment),
        "table": deviation_table(alignment),
        "worst": _worst(
            np.array(align_graph), np.array(align_reference), align_labels, ALIGNMENT_FEATURE_NAMES
        ),
    }
    return report


def _rows(rows: list) -> list[dict[str, object]]:
    return [
        {
            "family": r.family.name,
            "max_abs": r.max_abs,
            "max_rel": r.max_rel,
            "within": r.share_within,
            "n": r.n_values,
        }
        for r in rows
    ]


def _worst(
    graph: np.ndarray,
    reference: np.ndarray,
    labels: list[str],
    names: tuple[str, ...] = FEATURE_NAMES,
    n: int = 8,
) -> list[str]:
    """The largest absolute deviations, with clip and feature."""
    diff = np.abs(graph.astype(np.float64) - reference)
    order = np.argsort(diff, axis=None)[::-1][:n]
    out = []
    for flat in order:
        row, col = np.unravel_index(flat, diff.shape)
        out.append(
            f"{labels[row]} {names[col]}: graph {graph[row, col]:.6g}, "
            f"numpy {reference[row, col]:.6g}"
        )
    return out


def _scipy_polyphase(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    common = math.gcd(rate, target)
    out = scipy.signal.resample_poly(
        audio.astype(np.float64), target // common, rate // common, axis=1
    )
    return _fit(out, audio.shape[1], rate, target)


def _soxr(quality: str) -> Callable[[np.ndarray, int, int], np.ndarray]:
    def run(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
        out = soxr.resample(audio.T, rate, target, quality=quality).T
        return _fit(out, audio.shape[1], rate, target)

    return run


def _fit(out: np.ndarray, n: int, rate: int, target: int) -> np.ndarray:
    length = -(-n * target // rate)
    fixed = np.zeros((out.shape[0], length), dtype=np.float32)
    fixed[:, : min(length, out.shape[1])] = out[:, :length]
    return fixed


def bench_resampling(graphs: FeatureGraphs) -> dict[str, object]:
    """(1) Why the graph resamples: the spectral families of the graph fed 22.05 kHz audio
    from another resampler (a browser's), against the graph resampling 44.1 / 48 kHz audio
    itself with soxr's filter. (2) Files at other rates, which a browser decodes at 48 kHz:
    the graph on that 48 kHz audio against ``extract_features`` on the original."""
    spectral = [f for f in FEATURE_FAMILIES if not f.name.startswith(_NATIVE_FAMILIES)]
    resamplers = {"scipy_polyphase": _scipy_polyphase, "soxr_lq": _soxr("LQ")}
    report: dict[str, object] = {}
    for name, resampler in resamplers.items():
        moved, reference = [], []
        for sr in (44100, 48000):
            for _, clip in synthetic_clips(sr):
                moved.append(graphs.features(resampler(clip, sr, 22050), 22050))
                reference.append(graphs.features(clip, sr))
        rows = deviations(np.array(moved), np.array(reference), spectral)
        report[f"browser_resampler_{name}"] = {"rows": _rows(rows), "table": deviation_table(rows)}
    for name, resampler in {"soxr_hq": _soxr("HQ"), "scipy_polyphase": _scipy_polyphase}.items():
        moved, reference = [], []
        for sr in (16000, 32000, 88200, 96000):
            for _, clip in synthetic_clips(sr):
                moved.append(graphs.features(resampler(clip, sr, 48000), 48000))
                reference.append(extract_features(clip, sr))
        rows = deviations(np.array(moved), np.array(reference))
        report[f"other_rates_via_48k_{name}"] = {
            "rows": _rows(rows),
            "table": deviation_table(rows),
        }
    return report


def _timed(function: Callable[[], object], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


def bench_speed(repeat: int) -> dict[str, object]:
    sr = 44100
    audio = music(sr, 30.0, seed=5)
    vocal, inst = vocal_pair(sr, 30.0, 250.0, seed=1)
    variants = [
        (m, p)
        for m in STFT_METHODS
        for p in STFT_PRECISIONS
        if not (m == "conv" and p == "float64")
    ]
    runs: dict[str, Callable[[], object]] = {
        "extract_features": lambda: extract_features(audio, sr)
    }
    sessions: dict[str, float] = {}
    for method, precision in variants:
        start = time.perf_counter()
        graphs = FeatureGraphs(build_feature_graph(method, precision))
        sessions[f"{method}/{precision}"] = time.perf_counter() - start
        feed = graphs.feature_inputs(audio, sr)
        runs[f"graph {method}/{precision}"] = lambda s=graphs._features, f=feed: s.run(None, f)
    aligner = FeatureGraphs(alignment=build_alignment_graph())
    runs["estimate_alignment"] = lambda: estimate_alignment(vocal, inst, sr)
    runs["alignment graph"] = lambda: aligner.alignment(vocal, inst, sr)
    for run in runs.values():
        run()  # warm-up: caches, allocator
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):  # interleaved, so that load changes hit every method alike
        for name, run in runs.items():
            best, _ = _timed(run, 1)
            times[name].append(best)
    return {
        "clip": "30 s stereo 44.1 kHz synthetic music; alignment: 30 s mono pair",
        "onnxruntime": ort.__version__,
        "threads": 1,
        "session_creation_s": sessions,
        "best_s": {name: min(t) for name, t in times.items()},
        "median_s": {name: float(np.median(t)) for name, t in times.items()},
    }


def bench_sizes() -> dict[str, dict[str, float]]:
    sizes = {}
    models = {
        f"features {m}/{p}": build_feature_graph(m, p)
        for m in STFT_METHODS
        for p in STFT_PRECISIONS
        if not (m == "conv" and p == "float64")
    }
    models["alignment factored/float32"] = build_alignment_graph()
    for name, model in models.items():
        data = model.SerializeToString()
        sizes[name] = {"mb": len(data) / 1e6, "gzip_mb": len(gzip.compress(data, 6)) / 1e6}
    return sizes


_PEAK_MEMORY = """
import re
from pathlib import Path
import numpy as np
import soundfile as sf

def high_water_mb():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024

data, sr = sf.read({wav!r}, dtype="float32", always_2d=True)
audio = np.ascontiguousarray(data.T)
del data
if {graph}:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession({model!r}, options, providers=["CPUExecutionProvider"])
    before = high_water_mb()
    session.run(None, {{"audio": audio, "sample_rate": np.array(sr, dtype=np.int64)}})
else:
    from mixai_inference import extract_features
    extract_features(audio[:, : 10 * sr], sr)  # caches, like the session above
    before = high_water_mb()
    extract_features(audio, sr)
print(audio.nbytes / 2**20, before, high_water_mb())
"""


def bench_memory(duration_s: float) -> dict[str, float]:
    """Peak RSS (MB) of one feature extraction of a long file in a fresh process: the
    decoded audio, then the high-water mark after the session / caches were set up and
    after the extraction."""
    import subprocess
    import tempfile

    report = {"duration_s": duration_s}
    with tempfile.TemporaryDirectory() as folder:
        model, wav = str(Path(folder) / "features.onnx"), str(Path(folder) / "long.wav")
        Path(model).write_bytes(build_feature_graph().SerializeToString())
        sf.write(wav, music(44100, duration_s, seed=4).T, 44100, subtype="PCM_16")
        for name, graph in (("graph", True), ("extract_features", False)):
            code = _PEAK_MEMORY.format(wav=wav, graph=graph, model=model)
            out = subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True
            )
            audio_mb, before, after = map(float, out.stdout.split())
            report["audio_mb"] = audio_mb
            report[f"{name}_ready_mb"] = before
            report[f"{name}_peak_mb"] = after
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=["deviation", "resampling", "speed", "sizes", "memory"], action="append"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--demo-dir", type=Path, default=None, help="folder with */mix.flac")
    parser.add_argument("--demo-clips", type=int, default=24)
    args = parser.parse_args()
    parts = args.only or ["deviation", "resampling", "speed", "sizes", "memory"]
    report: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "cpus": os.cpu_count(),
        "load_average_1min_before": os.getloadavg()[0],
    }
    graphs = FeatureGraphs(build_feature_graph(), build_alignment_graph())
    if "deviation" in parts:
        report["deviation"] = bench_deviation(graphs, args.demo_dir, args.demo_clips)
    if "resampling" in parts:
        report["resampling"] = bench_resampling(graphs)
    if "speed" in parts:
        report["speed"] = bench_speed(args.repeat)
    if "sizes" in parts:
        report["sizes"] = bench_sizes()
    if "memory" in parts:
        report["memory"] = bench_memory(600.0)
    report["load_average_1min_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
