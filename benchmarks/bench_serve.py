"""Benchmark of ``mixai-serve``; results go to docs/benchmarks.md.

1. **Features over HTTP**: ``POST /v1/predict`` with a feature vector, from 1, 8 and 32
   concurrent keep-alive clients (an asyncio load generator in its own process, on the same
   machine), for ``--seconds`` each: requests per second, p50 and p99 latency as the client
   sees it. Goal: at least 1,500 requests/s, p99 at most 10 ms at 8 clients.
2. **Overhead**: the same request's p50 at 1 client against ``Predictor.predict`` in
   process on the same bundle (what HTTP, JSON, validation and the database writer add).
3. **Upload**: a 30 s stereo 44.1 kHz WAV uploaded to ``/v1/predict`` end to end (decode,
   features, models, answer); median of ``--uploads`` runs.
4. **Floor**: ``GET /healthz`` (a route that does nothing) at 1 client: what uvicorn and
   Starlette cost per request before the service does any work.
5. **Pinned**: one worker on CPU 0 and the load generator on CPU 1, so that neither takes
   the other's core (on a 2-core machine the unpinned runs share both).
6. **Full garbage collection** in a worker after 20,000 requests: the pause with the
   metrics sink's default ring buffer and without it (the service's), with and without
   ``gc.freeze()`` after start-up (the service freezes).

Every answer is written to a database as in production (the writer runs in the service
process): a SQLite file, or with ``--db postgres`` a throwaway PostgreSQL cluster that fsyncs
its commits. The models are the demo bundle's (``data/06_models/bundle``) when it
exists, else the synthetic TabularNet models of ``bench_predict.py``.

    .venv/bin/python benchmarks/bench_serve.py [--seconds 10] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "serve"))
sys.path.insert(0, str(ROOT / "tests" / "inference"))

from service_support import FEATURES, Service, migrated  # noqa: E402

from bench_ab_analysis import throwaway_postgres  # noqa: E402
from bench_predict import synthetic_bundle  # noqa: E402
from mixai_inference import MetricsSink, Predictor  # noqa: E402
from process_cpu import cpu_seconds  # noqa: E402

SERVICE_ENV = {"ENABLE_CPU_ML": "true", "MIXAI_CONTROL_REFRESH_S": "", "MIXAI_BUNDLE_POLL_S": ""}
"""Models on; the service's own refresh and poll intervals, not the tests' quick ones."""

LOAD_CLIENT = r"""
import asyncio, json, sys, time

async def client(port, body, deadline, latencies, errors):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if body:
        head = (f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
    else:  # the floor of the HTTP stack: a route that does nothing
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        writer.write(head + body)
        status = await reader.readline()
        length = 0
        while (line := await reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - start)
        if b" 200 " not in status:
            errors.append(status)
    writer.close()

async def main():
    port, clients, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    body = sys.stdin.buffer.read()
    latencies, errors, warm_up = [], [], []
    warm = time.perf_counter() + 1.0
    await asyncio.gather(*(client(port, body, warm, warm_up, []) for _ in range(clients)))
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(client(port, body, deadline, latencies, errors) for _ in range(clients)))
    elapsed = time.perf_counter() - start
    print(json.dumps({"n": len(latencies), "seconds": elapsed, "errors": len(errors),
                      "latencies": latencies, "warm_up": len(warm_up)}))

asyncio.run(main())
"""


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1e3, q))


def load(
    service: Service,
    clients: int,
    seconds: float,
    *,
    features: bool = True,
    client_cpu: int | None = None,
) -> dict[str, float]:
    """Requests per second and latency; and the service's CPU time per request, which does
    not depend on how busy the rest of the machine is. ``features=False``: ``GET /healthz``
    instead, the floor of the HTTP stack. ``client_cpu``: the load generator runs on that
    CPU only."""
    body = json.dumps({"features": FEATURES, "user_id": "bench-user"}).encode() if features else b""
    assert service.process is not None
    cpu_before = cpu_seconds(service.process.pid)
    done = subprocess.run(
        [sys.executable, "-c", LOAD_CLIENT, str(service.port), str(clients), str(seconds)],
        input=body, capture_output=True, check=True,
        preexec_fn=None if client_cpu is None else lambda: os.sched_setaffinity(0, {client_cpu}),
    )  # fmt: skip
    cpu = cpu_seconds(service.process.pid) - cpu_before
    result = json.loads(done.stdout)
    latencies = result["latencies"]
    return {
        "clients": clients,
        "requests": result["n"],
        "errors": result["errors"],
        "requests_per_s": result["n"] / result["seconds"],
        "p50_ms": percentile_ms(latencies, 50),
        "p99_ms": percentile_ms(latencies, 99),
        "service_cpu_ms_per_request": 1e3 * cpu / (result["n"] + result["warm_up"]),
    }


def in_process_ms(bundle: Path, n: int = 3000) -> dict[str, float]:
    predictor = Predictor.from_bundle(bundle, metrics_sink=MetricsSink())
    x = np.asarray(FEATURES, dtype=np.float32)
    for _ in range(200):
        predictor.predict(x, user_id="bench-user")
    times = []
    for _ in range(n):
        start = time.perf_counter()
        predictor.predict(FEATURES, user_id="bench-user")
        times.append(time.perf_counter() - start)
    return {"p50_ms": percentile_ms(times, 50), "p99_ms": percentile_ms(times, 99)}


COLLECTION_PAUSE = r"""
import gc, sys, time
import numpy as np
import mixai_inference.serve.app  # the worker's imports
from mixai_inference import MetricsSink, Predictor
from mixai_inference.features import FEATURE_NAMES

bundle, capacity, freeze, calls = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

class Discard:
    def add(self, entry): pass
    def flush(self): return 0
    def close(self): pass

predictor = Predictor.from_bundle(bundle, metrics_sink=MetricsSink(capacity, writer=Discard()))
if freeze == "1":
    gc.freeze()
x = np.random.default_rng(0).normal(size=len(FEATURE_NAMES)).astype(np.float32)
for i in range(calls):
    predictor.predict(x, user_id=f"user-{i}", request_id=f"request-{i}")
pauses = []
for _ in range(5):
    start = time.perf_counter()
    gc.collect()
    pauses.append(time.perf_counter() - start)
print(min(pauses) * 1e3, len(gc.get_objects()))
"""


def collection_pause_ms(bundle: Path, calls: int = 20_000) -> list[dict[str, Any]]:
    """A worker's full garbage collection after ``calls`` requests of distinct users: with
    the metrics sink's default ring buffer (10,000 calls kept) and without (the service's),
    each with and without ``gc.freeze()`` after start-up (the service freezes)."""
    rows = []
    for capacity, freeze in ((10_000, False), (10_000, True), (0, False), (0, True)):
        argv = [str(bundle), str(capacity), str(int(freeze)), str(calls)]
        env = {**os.environ, "ENABLE_CPU_ML": "true"}
        out = subprocess.run(
            [sys.executable, "-c", COLLECTION_PAUSE, *argv],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        rows.append(
            {"ring": capacity, "frozen": freeze, "pause_ms": float(out[0]), "objects": int(out[1])}
        )
    return rows


def pin(pid: int, cpu: int) -> None:
    """Every thread of process ``pid`` on CPU ``cpu`` only (threads it starts later inherit)."""
    for thread in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(thread.name), {cpu})


def wav_30s() -> bytes:
    sr = 44_100
    t = np.arange(30 * sr) / sr
    rng = np.random.default_rng(0)
    left = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    right = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([left, right], axis=1), sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def upload_s(service: Service, runs: int) -> dict[str, Any]:
    audio = wav_30s()
    boundary = "mixai-bench"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="mix.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + audio
        + f"\r\n--{boundary}--\r\n".encode()
    )
    client = service.client()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        status, answer = client.call(
            "POST", "/v1/predict", raw=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )  # fmt: skip
        times.append(time.perf_counter() - start)
        assert status == 200, answer
    median = statistics.median(times) if times else None
    return {"upload_mb": len(body) / 1e6, "median_s": median, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument("--bundle", type=Path, default=ROOT / "data/06_models/bundle")
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="where the answers go: a SQLite file, or a throwaway PostgreSQL cluster (fsync on)",
    )
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "load_avg_at_start": os.getloadavg(),
        }
    }
    with tempfile.TemporaryDirectory() as scratch, contextlib.ExitStack() as stack:
        work = Path(scratch)
        cluster = (
            # its own folder: the postgres user cannot enter the scratch folder
            stack.enter_context(
                throwaway_postgres(Path(tempfile.mkdtemp(prefix="mixai-pg-")), durable=True)
            )
            if args.db == "postgres"
            else None
        )

        def database(name: str) -> str:
            """A new, migrated database for one configuration."""
            if cluster is None:
                return migrated(f"sqlite:///{work / f'{name}.db'}")
            engine = create_engine(cluster, isolation_level="AUTOCOMMIT")
            with engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            engine.dispose()
            return migrated(cluster.rsplit("/", 1)[0] + f"/{name}")

        @contextlib.contextmanager
        def running(name: str, workers: int) -> Iterator[tuple[Service, str]]:
            """``mixai-serve`` with ``workers`` workers on a new database (and its URL)."""
            url = database(name)
            service = Service(bundle, url, work / name, SERVICE_ENV)
            service.start("--workers", str(workers))
            try:
                yield service, url
            finally:
                service.stop()

        report["db"] = args.db
        bundle = args.bundle
        if not (bundle / "manifest.json").is_file():
            bundle = synthetic_bundle(work / "bundle")
        report["bundle"] = str(bundle)
        report["in_process"] = in_process_ms(bundle)
        report["full_collection"] = collection_pause_ms(bundle)
        for workers in args.workers:
            with running(f"bench-{workers}", workers) as (service, url):
                runs = [load(service, clients, args.seconds) for clients in args.clients]
                report[f"http_workers_{workers}"] = runs
                if workers == args.workers[0]:
                    report["healthz_1_client"] = load(service, 1, args.seconds, features=False)
                    report["upload_30s"] = upload_s(service, args.uploads)
            engine = create_engine(url)
            with engine.connect() as connection:
                stored = connection.execute(text("SELECT COUNT(*) FROM model_metrics")).scalar_one()
            engine.dispose()
            answered = sum(run["requests"] for run in runs)
            report[f"rows_workers_{workers}"] = {"answered_x2": 2 * answered, "stored": stored}
        if (os.cpu_count() or 1) >= 2:  # the service on one CPU, the load generator on another
            with running("bench-pinned", 1) as (service, _):
                assert service.process is not None
                pin(service.process.pid, 0)
                report["http_pinned"] = [
                    load(service, clients, args.seconds, client_cpu=1) for clients in args.clients
                ]
        runs = report[f"http_workers_{args.workers[0]}"]
        one = next((run for run in runs if run["clients"] == 1), None)
        if one is not None:
            report["overhead_p50_ms"] = one["p50_ms"] - report["in_process"]["p50_ms"]
    report["machine"]["load_avg_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
