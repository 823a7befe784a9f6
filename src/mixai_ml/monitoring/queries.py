"""SQL over ``model_metrics`` and ``labels``: every aggregate is computed in the database.

Queries are SQLAlchemy Core with bound timestamps, so the same code runs on SQLite and
PostgreSQL; the only dialect-specific pieces are :func:`utc_period` (calendar buckets) and
:func:`floor_div` (latency histogram buckets). A window is ``(start, end]``. Constants inside
grouped expressions are inlined (``literal_column``) so that PostgreSQL sees the SELECT and GROUP
BY expressions as identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

import pandas as pd
from sqlalchemy import Engine, Float, Integer, and_, case, cast, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from mixai_ml.datasets.sql import to_utc
from mixai_ml.db import schema

Period = Literal["hour", "day"]
NO_VERSION = "none"
"""Label of predictions logged without a ``model_version`` (e.g. rule fallbacks)."""

_metrics = schema.model_metrics
_labels = schema.labels


def utc_period(column: Any, period: Period, dialect: str) -> ColumnElement[str]:
    """``YYYY-MM-DD`` (day) or ``YYYY-MM-DD HH`` (hour) of a UTC timestamp column, as text."""
    if dialect == "sqlite":  # stored as ISO text in UTC
        return func.substr(
            column, literal_column("1"), literal_column("10" if period == "day" else "13")
        )
    if dialect == "postgresql":
        pattern = "'YYYY-MM-DD'" if period == "day" else "'YYYY-MM-DD HH24'"
        return func.to_char(func.timezone(literal_column("'UTC'"), column), literal_column(pattern))
    raise ValueError(
        f"monitoring supports SQLite and PostgreSQL, not {dialect!r}: "
        "point MIXAI_DB_URL at one of them"
    )


def floor_div(column: Any, width: float, dialect: str) -> ColumnElement[int]:
    """``floor(column / width)`` for non-negative values (SQLite's CAST truncates)."""
    ratio = cast(column, Float) / literal_column(repr(float(width)))
    if dialect == "sqlite":
        return cast(ratio, Integer)
    return cast(func.floor(ratio), Integer)


def _in_window(start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(_metrics.c.recorded_at > start, _metrics.c.recorded_at <= end)


def _versions(frame: pd.DataFrame) -> pd.DataFrame:
    """``model_version`` with NULL (no model) shown as :data:`NO_VERSION`."""
    return frame.assign(model_version=frame["model_version"].fillna(NO_VERSION))


def latest_event(engine: Engine) -> pd.Timestamp | None:
    """Time of the newest ``model_metrics`` row (UTC), or ``None`` when there is none."""
    frame = to_utc(
        pd.read_sql_query(select(func.max(_metrics.c.recorded_at).label("latest")), engine),
        ["latest"],
    )
    latest = frame["latest"].iloc[0]
    return None if pd.isna(latest) else pd.Timestamp(latest)


def _counts() -> list[ColumnElement[Any]]:
    """``requests``, ``latency_mean_ms``, ``errors``, ``fallbacks``, ``scored`` (answers with an
    out-of-distribution score) and ``out_of_distribution`` of a group of rows."""
    return [
        func.count().label("requests"),
        func.avg(_metrics.c.latency_ms).label("latency_mean_ms"),
        func.sum(case((_metrics.c.ok.is_(False), 1), else_=0)).label("errors"),
        func.sum(case((_metrics.c.source == "rules", 1), else_=0)).label("fallbacks"),
        func.count(_metrics.c.ood_score).label("scored"),
        func.sum(case((_metrics.c.ood.is_(True), 1), else_=0)).label("out_of_distribution"),
    ]


def window_counts(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Per task × model version: :func:`_counts`.

    An error is a row with ``ok`` false; a fallback is a row served by the rules
    (``source = 'rules'``).
    """
    query = (
        select(_metrics.c.task, _metrics.c.model_version, *_counts())
        .where(_in_window(start, end))
        .group_by(_metrics.c.task, _metrics.c.model_version)
    )
    return _versions(pd.read_sql_query(query, engine))


def latency_histogram(
    engine: Engine,
    start: datetime,
    end: datetime,
    resolution_ms: float,
    period: Period | None = None,
) -> pd.DataFrame:
    """Counts of latencies in buckets ``[k·w, (k+1)·w)`` per task × model version (× period).

    Columns: ``task, model_version, [period,] bucket, count``. Quantiles follow from the
    cumulative counts (:func:`mixai_ml.monitoring.windows.histogram_quantiles`).
    """
    dialect = engine.dialect.name
    bucket = floor_div(_metrics.c.latency_ms, resolution_ms, dialect).label("bucket")
    keys: list[Any] = [_metrics.c.task, _metrics.c.model_version]
    if period is not None:
        keys.append(utc_period(_metrics.c.recorded_at, period, dialect).label("period"))
    query = (
        select(*keys, bucket, func.count().label("count"))
        .where(_in_window(start, end))
        .group_by(*keys, bucket)
    )
    return _versions(pd.read_sql_query(query, engine))


def period_counts(engine: Engine, start: datetime, end: datetime, period: Period) -> pd.DataFrame:
    """Per period × task: :func:`_counts`."""
    bucket = utc_period(_metrics.c.recorded_at, period, engine.dialect.name).label("period")
    query = (
        select(bucket, _metrics.c.task, *_counts())
        .where(_in_window(start, end))
        .group_by(bucket, _metrics.c.task)
    )
    return pd.read_sql_query(query, engine)


def sketches(
    engine: Engine, start: datetime, end: datetime, period: Period, chunk_rows: int = 50_000
) -> Iterator[pd.DataFrame]:
    """The ``input_sketch`` of every scored answer of the window, in chunks: ``recorded_at,
    period, task, model_version, input_sketch``."""
    bucket = utc_period(_metrics.c.recorded_at, period, engine.dialect.name).label("period")
    query = select(
        _metrics.c.recorded_at,
        bucket,
        _metrics.c.task,
        _metrics.c.model_version,
        _metrics.c.input_sketch,
    ).where(_in_window(start, end), _metrics.c.input_sketch.is_not(None))
    for chunk in pd.read_sql_query(query, engine, chunksize=chunk_rows):
        yield _versions(to_utc(chunk, ["recorded_at"]))


def labelled_predictions(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """The model's own answers (``source = 'ml'``, with a prediction) that have a label:
    ``recorded_at, task, model_version, prediction, label`` (JSON text), joined on ``job_id`` and
    ``task``. Fallback answers are left out: they measure the rules, not the model version."""
    query = (
        select(
            _metrics.c.recorded_at,
            _metrics.c.task,
            _metrics.c.model_version,
            _metrics.c.prediction,
            _labels.c.label,
        )
        .join(
            _labels,
            and_(_labels.c.job_id == _metrics.c.job_id, _labels.c.task == _metrics.c.task),
        )
        .where(
            _in_window(start, end),
            _metrics.c.source == "ml",
            _metrics.c.prediction.is_not(None),
        )
    )
    return _versions(to_utc(pd.read_sql_query(query, engine), ["recorded_at"]))
