"""The loop closed under faults: 8 clients, thousands of requests, the database stopped and
restarted, a bundle swapped and a flag switched off mid-run. Every request is answered, every
answer is exactly once in ``model_metrics``, the flag is obeyed within the refresh interval.
On PostgreSQL (the suite's own server, really stopped) and on SQLite (locked by a writer)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from service_support import FEATURES, Service, migrated, serve_bundle
from sqlalchemy import create_engine, text
from test_service import rows, set_flag

from mixai_inference.tasks import ALIGN_CONF, MASTER_REG, PRESET_CLS

CLIENTS = 8
AT_LEAST = 2000  # requests in all
REFRESH_S = 1.0


class Load:
    """``CLIENTS`` threads sending predictions, each with its own request ids, until stopped."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.answers: list[tuple[float, int, str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.done = 0
        self.threads = [threading.Thread(target=self._client, args=(c,)) for c in range(CLIENTS)]

    def _client(self, number: int) -> None:
        client = self.service.client()
        i = 0
        while not self._stop.is_set():
            i += 1
            request_id = f"c{number}-{i}"
            sent = time.monotonic()
            status, answer = client.call(
                "POST",
                "/v1/predict",
                {"features": FEATURES, "user_id": f"user-{(number * 7919 + i) % 300}"},
                headers={"X-Request-ID": request_id},
            )
            with self._lock:
                self.answers.append((sent, status, request_id, answer))
                self.done += 1
            time.sleep(0.002)  # a web app's pace, so that the faults land mid-run

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def wait_for(self, requests: int) -> None:
        while self.done < requests:
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join()


def closed_loop(service: Service, db_url: str, outage: Callable[[], Any], bundle: Path) -> None:
    load = Load(service)
    load.start()
    load.wait_for(500)
    with outage():
        load.wait_for(load.done + 500)
        # v → w: a new bundle swapped in while the database is down
        serve_bundle(bundle, {MASTER_REG: ["w0", "w1"], PRESET_CLS: ["q0"], ALIGN_CONF: ["b0"]})
        probe = service.client()
        service.wait_until(
            lambda: probe.predict()[1][MASTER_REG]["model_version"] == "w0", what="new bundle"
        )
        load.wait_for(load.done + 500)
    load.wait_for(load.done + 500)
    set_flag(db_url, "enable_cpu_ml", False)
    switched = time.monotonic()
    time.sleep(REFRESH_S + 3.0)
    load.wait_for(AT_LEAST)
    load.stop()
    assert service.stop()

    statuses = {status for _, status, _, _ in load.answers}
    assert statuses == {200}, [a for a in load.answers if a[1] != 200][:3]
    assert len(load.answers) >= AT_LEAST
    versions = {a[MASTER_REG]["model_version"] for _, _, _, a in load.answers}
    assert {"v0", "w0"} <= versions  # served both bundles
    late = [a for sent, _, _, a in load.answers if sent > switched + REFRESH_S + 1.0]
    assert late
    assert all(a[MASTER_REG]["reason"] == "disabled" for a in late)

    stored = rows(db_url, "SELECT task, request_id FROM model_metrics")
    probes = {r for _, r in stored} - {request_id for _, _, request_id, _ in load.answers}
    assert len(stored) == len(set(stored)) == 2 * (len(load.answers) + len(probes))
    assert {request_id for _, _, request_id, _ in load.answers} <= {r for _, r in stored}
    assert rows(db_url, "SELECT COUNT(DISTINCT user_id) FROM ab_test_assignments")[0][0] <= 300
    assert not list(service.journal_dir.glob("*.jsonl")), "journals left behind"


def control_experiment(url: str) -> None:
    """Half the users in an experiment, so that assignments are written under load too."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO ab_experiments (experiment_id, task, variants, weights, coverage, "
                'status) VALUES (\'exp-load\', \'preset_cls\', \'{"a": "active", "b": "rules"}\','
                " '{\"a\": 1, \"b\": 1}', 0.5, 'running')"
            )
        )
    engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_postgresql_stopped_and_restarted_mid_run_loses_nothing(
    restartable_postgres: Any,
    pg_database: Callable[[], str],
    bundle: Path,
    start_service: Callable[..., Service],
) -> None:
    url = migrated(pg_database())
    control_experiment(url)
    service = start_service(bundle, url, MIXAI_CONTROL_REFRESH_S=str(REFRESH_S))

    @contextmanager
    def outage() -> Iterator[None]:
        restartable_postgres.stop_server()
        try:
            service.wait_until(
                lambda: service.client().call("GET", "/readyz")[0] == 503, what="stale control"
            )
            yield
        finally:
            restartable_postgres.start_server()

    closed_loop(service, url, outage, bundle)
    log = service.log.read_text()
    assert "journalling them" in log
    assert "replaying the journals" in log


@pytest.mark.slow
def test_sqlite_locked_mid_run_loses_nothing(
    sqlite_db: str, bundle: Path, start_service: Callable[..., Service]
) -> None:
    control_experiment(sqlite_db)
    service = start_service(bundle, sqlite_db, MIXAI_CONTROL_REFRESH_S=str(REFRESH_S))

    @contextmanager
    def outage() -> Iterator[None]:
        engine = create_engine(sqlite_db)
        with engine.connect() as connection:
            connection.exec_driver_sql("BEGIN EXCLUSIVE")  # nobody else reads or writes
            time.sleep(7.0)  # past the service's 5 s busy timeout
            yield
            connection.exec_driver_sql("ROLLBACK")
        engine.dispose()

    closed_loop(service, sqlite_db, outage, bundle)
    assert "journalling them" in service.log.read_text()
