"""Connections to the application database, chosen by ``MIXAI_DB_URL``."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from mixai_ml.db.migrations import apply_migrations

DEFAULT_DATABASE_URL = "sqlite:///data/mixai.db"

_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_lock = threading.Lock()


def database_url(url: str | None = None) -> str:
    """The SQLAlchemy URL of the application database.

    Takes ``url``, else ``MIXAI_DB_URL``, else ``sqlite:///data/mixai.db``. A relative
    SQLite path is relative to the working folder; the catalog's datasets give an
    absolute one (:func:`mixai_ml.datasets.sql.app_database_url`).
    """
    raw = url or os.environ.get("MIXAI_DB_URL") or DEFAULT_DATABASE_URL
    parsed = make_url(raw)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        return parsed.set(database=str(path)).render_as_string(hide_password=False)
    return raw


def get_engine(url: str | None = None, *, migrate: bool = True) -> Engine:
    """A process-wide engine for ``url`` (see :func:`database_url`), migrated on first use."""
    resolved = database_url(url)
    with _lock:
        engine = _engines.get(resolved)
        if engine is None:
            engine = create_engine(resolved, pool_pre_ping=True)
            _engines[resolved] = engine
        if migrate and resolved not in _migrated:
            apply_migrations(engine)
            _migrated.add(resolved)
    return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests, and before forking worker processes)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()
