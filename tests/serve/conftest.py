"""Fixtures of the service tests: a bundle of the package's real feature width, a migrated
database, and ``mixai-serve`` started in a subprocess on loopback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
for folder in (_HERE, _HERE.parent / "inference"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from service_support import Service, migrated, serve_bundle  # noqa: E402


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return serve_bundle(tmp_path / "bundle")


@pytest.fixture
def sqlite_db(sqlite_url: str) -> str:
    return migrated(sqlite_url)


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Starts services (stopped at the end of the test)."""
    started: list[Service] = []

    def start(bundle: Path, db_url: str, **env: str) -> Service:
        service = Service(bundle, db_url, tmp_path / f"service-{len(started)}", env)
        started.append(service)
        service.start()
        return service

    try:
        yield start
    finally:
        for service in started:
            service.stop()
