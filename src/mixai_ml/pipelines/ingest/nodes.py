"""Thin node of ``ingest``; the logic is in :mod:`mixai_ml.ingest`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from mixai_ml.ingest import ingest_journals


def ingest(app_db: Engine, service_journals: Path) -> dict[str, Any]:
    """Load the journals no running service holds; the report of what was loaded."""
    return ingest_journals(service_journals, app_db)
