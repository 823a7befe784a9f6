"""Load the inference service's leftover journals into the database (``ingest``, CONTRACTS §9).

``mixai-serve`` journals the rows the database could not take and replays them itself when
it comes back; a journal is left behind when a service stopped before that (a crash, a
redeploy during an outage). This loads each journal no running service holds, with the
service's own code (:mod:`mixai_inference.serve.journal` for the format and the lock,
:func:`mixai_inference.serve.store.write_rows` for the idempotent inserts), then deletes it:
a row already in the database is skipped, so loading twice stores it once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from mixai_inference.serve import journal
from mixai_inference.serve.store import write_rows

logger = logging.getLogger(__name__)

CHUNK = 5000
"""Rows per transaction."""


def ingest_journals(folder: Path, engine: Engine) -> dict[str, Any]:
    """Load every journal in ``folder`` that no service holds, then delete it.

    Returns:
        A report: files loaded, files held by a running service, rows per table.

    Raises:
        ValueError: If a file is not a journal (it is left in place).
    """
    report: dict[str, Any] = {"folder": str(folder), "loaded": [], "held": [], "rows": {}}
    files = journal.journal_files(folder)
    for number, path in enumerate(files, start=1):
        with journal.claimed(path) as rows:
            if rows is None:
                report["held"].append(path.name)
                continue
            for start in range(0, len(rows), CHUNK):
                write_rows(engine, rows[start : start + CHUNK])
            for table, _ in rows:
                report["rows"][table] = report["rows"].get(table, 0) + 1
            report["loaded"].append(path.name)
            logger.info("ingest %d/%d: %s, %d rows", number, len(files), path.name, len(rows))
    if report["held"]:
        logger.info("left %d journals that a running service holds", len(report["held"]))
    return report
