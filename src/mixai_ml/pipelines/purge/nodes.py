"""Thin Kedro node of the purge; the logic is in :mod:`mixai_ml.privacy`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from mixai_ml.ab.config import AbSettings
from mixai_ml.parameters import settings_section
from mixai_ml.privacy import FilePlace, purge_withdrawn_users


def purge(
    app_db: Engine,
    personal_data_files: Sequence[FilePlace],
    params: dict[str, Any],
    ab_params: dict[str, Any],
) -> dict[str, Any]:
    """Purge every place now; the audit goes to ``purge_audit``, the summary to a report."""
    settings = settings_section(params, "purge", required=("abandoned_after",))
    now = datetime.now(UTC)
    result = purge_withdrawn_users(
        app_db,
        personal_data_files,
        purge_id=f"purge-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
        abandoned_after=pd.Timedelta(str(settings["abandoned_after"])),
        ab_settings=AbSettings.from_params(ab_params),
    )
    return result.summary()
