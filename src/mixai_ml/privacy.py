"""The purge: delete the ML data of users who withdrew consent (docs/data_contracts.md §2).

Removes their rows from ``features_store``, ``labels`` and ``feature_failures``,
from the derived training data (Parquet files with a ``job_id`` column) and their
per-user model parameters (the bundle's ``user_adapters.json``), keeps whatever a
``legal_hold`` exclusion covers, and returns an audit row per user and table. Running it
again deletes nothing more (idempotent). The app's own records (``jobs``, the audio,
``ml_consent``) are the app's to manage.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Engine, Table, delete, func, select

from mixai_inference.adapters import ADAPTERS_FILE
from mixai_ml.db import schema
from mixai_ml.governance import protected_by_legal_hold, withdrawn_users
from mixai_ml.personalization.store import purge_users_from_bundle

logger = logging.getLogger(__name__)

PURGED_TABLES = (schema.features_store, schema.labels, schema.feature_failures)
PURGE_DEADLINE = timedelta(hours=24)
"""A withdrawn user's ML data is gone within this time of the withdrawal (CONTRACTS §4)."""
AUDIT_COLUMNS = ["purge_id", "purged_at", "user_id", "table_name", "rows_deleted"]
_CHUNK = 500


def jobs_to_purge(
    jobs: pd.DataFrame, consent: pd.DataFrame, exclusions: pd.DataFrame
) -> pd.DataFrame:
    """``job_id`` and ``user_id`` of withdrawn users' jobs not under a legal hold."""
    withdrawn = jobs[jobs["user_id"].astype(str).isin(withdrawn_users(consent))]
    kept = protected_by_legal_hold(withdrawn, exclusions)
    return withdrawn.loc[~kept, ["job_id", "user_id"]].astype(str).reset_index(drop=True)


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _count_rows(connection: Connection, table: Table, job_ids: list[str]) -> pd.Series:
    """``table``'s rows of ``job_ids``, counted per job."""
    counts: dict[str, int] = {}
    for chunk in _chunks(job_ids):
        found = connection.execute(
            select(table.c.job_id, func.count())
            .where(table.c.job_id.in_(chunk))
            .group_by(table.c.job_id)
        )
        counts.update({str(job): int(n) for job, n in found})
    return pd.Series(counts, dtype=int)


def _purge_table(connection: Connection, table: Table, job_ids: list[str]) -> pd.Series:
    """Delete ``table``'s rows of ``job_ids``; rows deleted per job."""
    counts = _count_rows(connection, table, job_ids)
    for chunk in _chunks(job_ids):
        connection.execute(delete(table).where(table.c.job_id.in_(chunk)))
    return counts


def _read_governance(connection: Connection) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``jobs`` (ids only), ``ml_consent`` and ``ml_exclusions``."""
    jobs = pd.read_sql_table("jobs", connection, columns=["job_id", "user_id"])
    return (
        jobs,
        pd.read_sql_table("ml_consent", connection),
        pd.read_sql_table("ml_exclusions", connection),
    )


def pending_withdrawals(engine: Engine, now: datetime) -> pd.DataFrame:
    """Withdrawn users (no legal hold) whose ML data the purge has not removed yet, oldest first.

    Columns: ``user_id``, ``withdrawn_at`` (the consent row's ``updated_at`` when a user
    declined without a ``withdrawn_at``), ``age`` (``now - withdrawn_at``), ``deadline``
    (``withdrawn_at`` + :data:`PURGE_DEADLINE`) and ``rows`` (rows left in the purged tables).
    """
    with engine.connect() as connection:
        jobs, consent, exclusions = _read_governance(connection)
        targets = jobs_to_purge(jobs, consent, exclusions)
        job_ids = targets["job_id"].tolist()
        counts = [_count_rows(connection, table, job_ids) for table in PURGED_TABLES]
    left = pd.concat(counts).groupby(level=0).sum()
    owner = targets.set_index("job_id")["user_id"]
    per_user = left.groupby(owner.reindex(left.index).to_numpy()).sum()
    per_user = per_user[per_user > 0]
    when = consent.set_index(consent["user_id"].astype(str))
    withdrawn_at = pd.to_datetime(when["withdrawn_at"], utc=True, format="ISO8601").fillna(
        pd.to_datetime(when["updated_at"], utc=True, format="ISO8601")
    )
    pending = pd.DataFrame(
        {"user_id": per_user.index.astype(str), "rows": per_user.to_numpy(dtype=int)}
    )
    pending["withdrawn_at"] = pd.to_datetime(
        withdrawn_at.reindex(pending["user_id"]).to_numpy(), utc=True
    )
    pending["age"] = pd.Timestamp(now) - pending["withdrawn_at"]
    pending["deadline"] = pending["withdrawn_at"] + PURGE_DEADLINE
    columns = ["user_id", "withdrawn_at", "age", "deadline", "rows"]
    return pending.sort_values("withdrawn_at")[columns].reset_index(drop=True)


def _purge_file(path: Path, job_ids: set[str]) -> pd.Series:
    """Rewrite a Parquet file without the rows of ``job_ids`` (atomically); rows removed per job."""
    frame = pd.read_parquet(path)
    if "job_id" not in frame:
        return pd.Series(dtype=int)
    removed = frame["job_id"].astype(str).isin(job_ids)
    if not removed.any():
        return pd.Series(dtype=int)
    staging = path.with_name(f".{path.name}.purge")
    frame[~removed].to_parquet(staging, index=False)
    os.replace(staging, path)
    return frame.loc[removed, "job_id"].astype(str).value_counts()


def purge_withdrawn_users(
    engine: Engine,
    derived_files: Iterable[Path],
    *,
    purge_id: str,
    now: datetime,
) -> pd.DataFrame:
    """Delete withdrawn users' ML data; return the audit rows (one per user and table).

    The database deletions run in one transaction; the derived files are then
    rewritten one by one (each atomically). Tables and files appear in the audit
    only where rows were deleted.
    """
    with engine.begin() as connection:
        jobs, consent, exclusions = _read_governance(connection)
        targets = jobs_to_purge(jobs, consent, exclusions)
        job_ids = targets["job_id"].tolist()
        deleted = {table.name: _purge_table(connection, table, job_ids) for table in PURGED_TABLES}
    job_set = set(job_ids)
    owner = targets.set_index("job_id")["user_id"]
    per_user_files = {}
    for path in sorted(derived_files):
        name = f"file:{path.as_posix()}"
        if path.name == ADAPTERS_FILE:  # a bundle's adapters: one record per user
            per_user_files[name] = purge_users_from_bundle(path.parent, set(owner))
        else:
            deleted[name] = _purge_file(path, job_set)
    per_user_counts = {
        table_name: per_job.groupby(owner.reindex(per_job.index).to_numpy()).sum()
        for table_name, per_job in deleted.items()
        if not per_job.empty
    }
    per_user_counts.update({name: counts for name, counts in per_user_files.items() if len(counts)})
    rows = []
    for table_name, per_user in per_user_counts.items():
        rows += [
            {
                "purge_id": purge_id,
                "purged_at": pd.Timestamp(now),
                "user_id": user,
                "table_name": table_name,
                "rows_deleted": int(count),
            }
            for user, count in per_user.items()
        ]
    audit = pd.DataFrame(rows, columns=AUDIT_COLUMNS)
    logger.info(
        "purge %s: %d withdrawn users' jobs without legal hold, %d rows deleted",
        purge_id,
        len(job_ids),
        int(audit["rows_deleted"].sum()) if len(audit) else 0,
    )
    return audit
