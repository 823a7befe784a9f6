"""What every table definition shares: the one ``MetaData`` and small column helpers."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, DateTime, MetaData


def added_in(version: int) -> dict[str, int]:
    """``info`` of a column, index or check that migration ``version`` adds to an existing table."""
    return {"added_in": version}


def one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    """A check that ``column`` holds one of ``values``."""
    allowed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"ck_{column}_allowed")


def utc() -> DateTime:
    """A timezone-aware timestamp (stored as UTC)."""
    return DateTime(timezone=True)


metadata = MetaData()
