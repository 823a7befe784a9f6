"""``admin_audit_log``: who changed what, from which state to which, and when."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from mixai_ml.db import schema

CRON_ACTOR = "cron"
"""The actor of changes made through ``/api/cron/*`` (the bearer of ``CRON_SECRET``)."""


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def record(
    connection: Connection,
    *,
    actor: str,
    action: str,
    target: str | None,
    before: Any,
    after: Any,
    at: datetime,
) -> str:
    """Write one audit row in the caller's transaction (so it stands or falls with the change).

    Args:
        action: ``<object>.<verb>``, e.g. ``flag.set``, ``model.rollout``, ``training.queue``.
        target: What was changed (a flag, ``<task>``, an experiment id, a run id).
        before, after: JSON-serialisable states (``None``: did not exist / was removed).

    Returns:
        The new ``audit_id``.
    """
    audit_id = uuid.uuid4().hex
    connection.execute(
        insert(schema.admin_audit_log).values(
            audit_id=audit_id,
            at=at,
            actor=actor,
            action=action,
            target=target,
            before=_json(before),
            after=_json(after),
        )
    )
    return audit_id
