"""``mixai-db``: the schema of the application database.

Examples::

    mixai-db status                    # applied and pending migrations, drift from the schema
    mixai-db upgrade                   # apply what is pending (adopts an existing database)
    mixai-db sql --dialect postgresql --out supabase/migrations

``status`` and ``upgrade`` work on ``--db-url``, else ``MIXAI_DB_URL``, else
``sqlite:///data/mixai.db``. ``status`` exits with 1 when a migration is pending or the
database lacks something of the schema; both exit with 2 when the database cannot be reached or
the data prevents a migration (the message says what to fix). See docs/database.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from mixai_ml.db.engine import database_url
from mixai_ml.db.ensure import MigrationError
from mixai_ml.db.migrations import (
    LATEST,
    MIGRATIONS,
    DatabaseStatus,
    apply_migrations,
    database_status,
)
from mixai_ml.db.sqlfiles import DIALECTS, sql_stream, write_sql_files


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixai-db", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--db-url", help="SQLAlchemy URL (default: MIXAI_DB_URL, else sqlite:///data/mixai.db)"
    )
    commands.add_parser(
        "status", parents=[database], help="applied and pending migrations, drift from the schema"
    )
    commands.add_parser("upgrade", parents=[database], help="apply the pending migrations")
    sql = commands.add_parser("sql", help="print the migrations as SQL files")
    sql.add_argument("--dialect", choices=DIALECTS, required=True)
    sql.add_argument("--out", type=Path, help="write one file per migration into this folder")
    return parser


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_file_missing(url: str) -> bool:
    parsed = make_url(url)
    return (
        parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and not Path(str(parsed.database)).exists()
    )


def format_status(status: DatabaseStatus) -> str:
    """The report of ``mixai-db status``."""
    version = max(status.applied, default=0)
    lines = [f"schema version {version} of {LATEST} ({len(status.pending)} pending)", ""]
    lines.append("migrations:")
    pending = {migration.version for migration in status.pending}
    for migration in MIGRATIONS:
        if migration.version in pending:
            state = "pending"
        else:
            state = f"applied {status.applied[migration.version]:%Y-%m-%d %H:%M:%S}"
        lines.append(f"  {migration.version:>3}  {state:<28} {migration.description}")
    for unknown in status.unknown:
        lines.append(f"  {unknown:>3}  applied, unknown to this release (a newer one applied it)")
    lines.append("")
    if not status.drift:
        lines.append("drift from the schema: none")
        return "\n".join(lines)
    lines.append(f"drift from the schema ({len(status.drift)}):")
    for drift in status.drift:
        fix = (
            f"migration {drift.fixed_by} makes it"
            if drift.fixed_by is not None
            else "no pending migration makes it (removed by hand?)"
        )
        lines.append(f"  {drift.change.describe()} — {fix}")
        if drift.obstacle:
            lines.append("    BLOCKED: " + drift.obstacle.replace("\n", "\n    "))
    return "\n".join(lines)


def _status(engine: Engine, url: str) -> int:
    print(f"database {_shown(url)}")
    if _sqlite_file_missing(url):
        print(f"no database file yet: `mixai-db upgrade` creates it ({LATEST} migrations)")
        return 1
    status = database_status(engine)
    print(format_status(status))
    return 0 if status.up_to_date else 1


def _upgrade(engine: Engine, url: str) -> int:
    print(f"database {_shown(url)}")
    started = time.perf_counter()
    try:
        applied = apply_migrations(engine)
    except MigrationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    if applied:
        print(f"applied migrations {', '.join(map(str, applied))} in {elapsed:.1f} s")
    else:
        print(f"up to date (schema version {LATEST})")
    drift = database_status(engine).drift
    for item in drift:
        print(f"still missing: {item.change.describe()}", file=sys.stderr)
    return 1 if drift else 0


class _PrintHandler(logging.Handler):
    """Prints records to the current ``sys.stdout``."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"  {record.getMessage()}")


def _show_changes_as_they_happen() -> None:
    """Print the migrations' log (each change of ``upgrade``), and nothing else's."""
    logger = logging.getLogger("mixai_ml.db")
    if not any(isinstance(handler, _PrintHandler) for handler in logger.handlers):
        logger.addHandler(_PrintHandler())
    logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "sql":
        if args.out:
            for path in write_sql_files(args.out, args.dialect):
                print(path)
        else:
            sys.stdout.write(sql_stream(args.dialect))
        return 0
    _show_changes_as_they_happen()
    url = database_url(args.db_url)
    engine = create_engine(url)
    try:
        return _status(engine, url) if args.command == "status" else _upgrade(engine, url)
    except SQLAlchemyError as error:  # cannot connect, no rights, ...: say so without a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
