"""Why the data prevents a key or a unique index: duplicate and NULL values, explained.

Used before a migration adds a key (:mod:`mixai_ml.db.ensure`), so that the error names the
offending values and the query that lists them instead of failing half-way.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, and_, column, func, inspect, or_, select, table

EXAMPLES = 5
"""How many offending key values an error message shows."""

DOCS = "docs/database.md"


def _listing_query(table_name: str, names: Sequence[str], *, key: bool) -> str:
    parts = ", ".join(names)
    where = "" if key else " WHERE " + " AND ".join(f"{name} IS NOT NULL" for name in names)
    return f"SELECT {parts}, count(*) FROM {table_name}{where} GROUP BY {parts} HAVING count(*) > 1"


def advice(table_name: str, names: Sequence[str], *, key: bool) -> tuple[str, str]:
    """The headline and the how-to-fix of an error about colliding values."""
    what = "key" if key else "unique columns"
    headline = f"{table_name}: cannot enforce the {what} ({', '.join(names)})"
    fix = (
        f"Keep one row per value{' (and none with a NULL)' if key else ''}, then migrate again. "
        f"List them with: {_listing_query(table_name, names, key=key)}. "
        f"See {DOCS}, section 'When the data prevents a key'."
    )
    return headline, fix


def collisions(
    connection: Connection, table_name: str, names: Sequence[str], *, key: bool
) -> str | None:
    """Duplicate values of ``names`` (and for a key, NULLs) in the table, explained; or ``None``.

    A column still to be added counts as NULL in every row.
    """
    present = {part["name"] for part in inspect(connection).get_columns(table_name)}
    missing = [name for name in names if name not in present]
    if missing:
        n_rows = connection.execute(select(func.count()).select_from(table(table_name))).scalar()
        if not key or not n_rows:
            return None
        headline, fix = advice(table_name, names, key=key)
        return f"{headline}: {n_rows} rows have a NULL in the key (no column {missing}).\n{fix}"
    live = table(table_name, *(column(name) for name in names))
    parts = [live.c[name] for name in names]
    count = func.count()
    groups = (
        select(*parts, count.label("n"))
        .where(and_(*(part.is_not(None) for part in parts)))
        .group_by(*parts)
        .having(func.count() > 1)
    )
    n_duplicates = connection.execute(
        select(func.count()).select_from(groups.subquery())
    ).scalar_one()
    n_nulls = 0
    if key:
        n_nulls = connection.execute(
            select(func.count()).select_from(live).where(or_(*(part.is_(None) for part in parts)))
        ).scalar_one()
    if not n_duplicates and not n_nulls:
        return None
    headline, fix = advice(table_name, names, key=key)
    problems = []
    if n_duplicates:
        examples = connection.execute(
            groups.order_by(func.count().desc(), *parts).limit(EXAMPLES)
        ).all()
        shown = ", ".join(f"{tuple(row[:-1])!r} in {row[-1]} rows" for row in examples)
        problems.append(f"{n_duplicates} values occur more than once, e.g. {shown}")
    if n_nulls:
        problems.append(f"{n_nulls} rows have a NULL in the key")
    return f"{headline}: {'; '.join(problems)}.\n{fix}"
