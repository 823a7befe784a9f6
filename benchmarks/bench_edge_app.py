"""Benchmark of the web app (``make edge``) in headless Chromium; results go to
docs/benchmarks.md ("Web app") and docs/edge.md.

Run from the repository root with the project environment, Node/npm and Debian's chromium::

    .venv/bin/python benchmarks/bench_edge_app.py                 # the bundle of make demo
    .venv/bin/python benchmarks/bench_edge_app.py --repeat 7 --variants

(a) time to answer: a 30 s stereo 44.1 kHz WAV chosen on the page (file input, Analyse):
    from the click to the answer (decoding, features graph, models), best and median of
    ``--repeat`` runs after a warm-up; and the same in Python in one process
    (``load_audio`` + ``extract_features`` + ``Predictor.predict``), interleaved.
    The first visit's start-up (WASM compile, graph sessions) is reported too.
(b) ``--variants``: the features graph's STFT variants in the browser (factored float64,
    the shipped one; factored float32; the ONNX DFT operator), each built into its own app,
    all open at once and run in turn (``features()``, graph time only) so that they share
    the machine's load.
(c) download size: every file the service worker caches, raw and gzip -9.

Without ``data/06_models/bundle`` (``make demo``) a bundle of the edge graphs alone is used
(every task answers from the rules: the models are a few kB and take microseconds).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / d) for d in ("inference", "edge", "")]

from synthetic_audio import music  # noqa: E402
from web_support import (  # noqa: E402
    DECODE_JS,
    as_js_bytes,
    build_web_app,
    static_server,
)

from browser_support import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from mixai_inference import FEATURE_SCHEMA_VERSION, Predictor, extract_features  # noqa: E402
from mixai_inference.audio import load_audio  # noqa: E402
from mixai_inference.bundle import Manifest, read_manifest, write_bundle  # noqa: E402
from mixai_ml.edge import build_edge_graphs, edge_bundle_entries  # noqa: E402

VARIANTS = {
    "factored, float64 (shipped)": {"stft": "factored", "feature_precision": "float64"},
    "factored, float32": {"stft": "factored", "feature_precision": "float32"},
    "ONNX DFT operator, float64": {"stft": "dft", "feature_precision": "float64"},
}


def edge_only_bundle(folder: Path, **graph_options: Any) -> Path:
    """A bundle with the edge graphs and no models."""
    graphs = {
        name: model.SerializeToString()
        for name, model in build_edge_graphs(**graph_options).items()
    }
    edge, files = edge_bundle_entries(graphs)
    manifest = Manifest(feature_schema_version=FEATURE_SCHEMA_VERSION, tasks={}, edge=edge)
    return write_bundle(folder, manifest, files)


def download_size(dist: Path) -> tuple[int, int]:
    """Raw and gzip -9 bytes of every file of the app."""
    files = [p for p in dist.rglob("*") if p.is_file()]
    raw = sum(p.stat().st_size for p in files)
    packed = sum(len(gzip.compress(p.read_bytes(), 9)) for p in files)
    return raw, packed


def browser_times(dist: Path, clip: Path, repeat: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with static_server(dist) as (url, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(url)
        page.evaluate("() => window.mixaiEdge.ready()")
        startup = time.perf_counter() - start
        totals, stages = [], []
        for _ in range(repeat + 1):  # the first run warms the WASM code up
            page.evaluate("() => { document.querySelector('#status').className = ''; }")
            page.set_input_files("#mix-file", str(clip))
            page.click("#analyse")
            page.wait_for_function(
                "document.querySelector('#status').className !== ''", timeout=600_000
            )
            status = page.inner_text("#status")
            if not status.startswith("done in "):
                raise RuntimeError(status)
            totals.append(float(status.split()[2]) / 1000)
            stages.append(
                page.evaluate("async () => (await window.mixaiEdge.engine()).lastTimings")
            )
        browser.close()
    return {"startup_s": startup, "totals_s": totals[1:], "stages_ms": stages[1:]}


def variant_graph_times(work: Path, clip: Path, repeat: int) -> dict[str, list[float]]:
    """Milliseconds of the feature graph per STFT variant, the variants' runs interleaved."""
    from playwright.sync_api import sync_playwright

    apps = {}
    for name, options in VARIANTS.items():
        label = f"{options['stft']}-{options['feature_precision']}"
        apps[name] = build_web_app(
            edge_only_bundle(work / f"bundle-{label}", **options), work / f"dist-{label}"
        )
    times: dict[str, list[float]] = {name: [] for name in apps}
    with contextlib.ExitStack() as servers, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pages = {}
        for name, dist in apps.items():
            url, _ = servers.enter_context(static_server(dist))
            page = browser.new_page()
            page.goto(url)
            page.evaluate("() => window.mixaiEdge.ready()")
            page.evaluate(f"b => {{ window.clip = ({DECODE_JS})(b); }}", as_js_bytes(clip))
            pages[name] = page
        for run in range(repeat + 1):  # the first round warms the WASM code up
            for name, page in pages.items():
                ms = page.evaluate(
                    """async () => {
                        await window.mixaiEdge.features(window.clip.slice(0));
                        return (await window.mixaiEdge.engine()).lastTimings.graphMs;
                    }"""
                )
                if run:
                    times[name].append(ms / 1000)
        browser.close()
    return times


def python_times(clip: Path, bundle: Path, repeat: int) -> list[float]:
    predictor = Predictor.from_bundle(bundle)
    times = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        audio, sr = load_audio(clip)
        predictor.predict(extract_features(audio, sr), user_id="bench")
        times.append(time.perf_counter() - start)
    predictor.close()
    return times[1:]


def summary(values: list[float]) -> str:
    return f"best {min(values):.2f} s, median {statistics.median(values):.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=ROOT / "data/06_models/bundle")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--variants", action="store_true", help="also time the STFT variants")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip = work / "mix-30s-44100-stereo.wav"
        sf.write(clip, music(44100, 30.0).T, 44100, subtype="PCM_16")
        bundle = args.bundle
        if not (bundle / "manifest.json").is_file() or not read_manifest(bundle).edge:
            print(f"{bundle} has no edge graphs: using a bundle of the edge graphs alone")
            bundle = edge_only_bundle(work / "bundle")
        dist = build_web_app(bundle, work / "dist")
        raw, packed = download_size(dist)
        print(f"download: {raw / 1e6:.1f} MB raw, {packed / 1e6:.1f} MB gzip -9")
        browser = browser_times(dist, clip, args.repeat)
        python = python_times(clip, bundle, args.repeat)
        print(f"first visit until ready: {browser['startup_s']:.1f} s")
        stages = json.dumps(browser["stages_ms"][0])
        print(f"browser, click to answer: {summary(browser['totals_s'])}; stages {stages}")
        print(f"python in process: {summary(python)}")
        if args.variants:
            for name, times in variant_graph_times(work, clip, args.repeat).items():
                print(f"variant {name}, feature graph: {summary(times)}")


if __name__ == "__main__":
    main()
