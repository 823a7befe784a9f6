"""Thin Kedro node of the purge; the logic is in :mod:`mixai_ml.privacy`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from mixai_ml.paths import project_root
from mixai_ml.privacy import purge_withdrawn_users


def purge(app_db: Engine, params: dict[str, Any]) -> pd.DataFrame:
    """Purge now; the audit rows go to ``purge_audit``."""
    now = datetime.now(UTC)
    files = {path for pattern in params["derived_files"] for path in project_root().glob(pattern)}
    return purge_withdrawn_users(
        app_db, files, purge_id=f"purge-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", now=now
    )
