"""Thin Kedro node of the purge; the logic is in :mod:`mixai_ml.privacy`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from mixai_ml.privacy import purge_withdrawn_users


def purge(app_db: Engine, derived_training_data: Sequence[Path]) -> pd.DataFrame:
    """Purge now; the audit rows go to ``purge_audit``."""
    now = datetime.now(UTC)
    return purge_withdrawn_users(
        app_db,
        derived_training_data,
        purge_id=f"purge-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
        now=now,
    )
