"""The SQL of the stored sums: per-user values, their signed changes, the helpers that run it.

The same text runs on SQLite (≥ 3.35) and PostgreSQL; what each sum means is in
:mod:`mixai_ml.ab.store`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, bindparam, text
from sqlalchemy.sql.elements import TextClause

from mixai_ml.ab.config import PRE_SUFFIX, AbSettings
from mixai_ml.ab.quantile import OFFSET
from mixai_ml.db.ab_store_tables import AB_HISTOGRAM_SUMS, AB_METRIC_SUMS
from mixai_ml.db.sqlite_shares import prepare_sqlite

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)
MIN_PRE_USERS = 100
"""A pre-period cap is fixed once at least this many users have a pre-period value."""

_TIME_PARAMS = ("lo", "hi")
_NOT_PRE = f"SUBSTR(metric, LENGTH(metric) - {len(PRE_SUFFIX) - 1}) <> '{PRE_SUFFIX}'"
_IS_PRE = f"SUBSTR(metric, LENGTH(metric) - {len(PRE_SUFFIX) - 1}) = '{PRE_SUFFIX}'"
_BASE = f"SUBSTR(metric, 1, LENGTH(metric) - {len(PRE_SUFFIX)})"


def literal(text_value: str) -> str:
    """A SQL string literal (metric names from the configuration)."""
    return "'" + text_value.replace("'", "''") + "'"


def _day(column: str) -> str:
    """The UTC date of a timestamp column as ``YYYY-MM-DD`` (text on SQLite, session zone on PG)."""
    return f"SUBSTR(CAST({column} AS VARCHAR(40)), 1, 10)"


def _bin(column: str) -> str:
    """The SQL twin of :func:`mixai_ml.ab.quantile.bin_index` (``:log_step`` = ln(1 + w))."""
    return (
        f"CASE WHEN {column} > 0 THEN {OFFSET} + CAST(FLOOR(LN({column}) / :log_step) AS INTEGER) "
        f"WHEN {column} < 0 THEN -{OFFSET} - CAST(FLOOR(LN(-{column}) / :log_step) AS INTEGER) "
        "ELSE 0 END"
    )


# --- per-user values, old (rows before :lo) and new (rows before :hi) -------------------------

# Users touched by the window [lo, hi): a temporary table, keyed like the covering index.
TOUCHED_USERS = f"""
INSERT INTO ab_touched (experiment_id, metric, user_id)
SELECT DISTINCT experiment_id,
       CASE WHEN {_IS_PRE} THEN {_BASE} ELSE metric END,
       user_id
FROM ab_test_metrics
WHERE {{where}}
ORDER BY 1, 2, 3
"""
IN_WINDOW = "recorded_at >= :lo AND recorded_at < :hi"

# Each touched user's rows of the metric and of its covariate, split at :lo and :hi. No time
# condition in WHERE: the planners must reach the rows through the covering index by user, in
# the order of ab_touched (so that SQLite groups without sorting).
_PER_USER_TOUCHED = f"""
per_user AS (
  SELECT y.*, COALESCE(x.xc1, 0) AS xc1, x.xs1, COALESCE(x.xc0, 0) AS xc0, x.xs0
  FROM (
    SELECT t.experiment_id, t.metric, t.user_id,
           SUM(CASE WHEN m.recorded_at < :hi THEN 1 ELSE 0 END) AS c1,
           SUM(CASE WHEN m.recorded_at < :hi THEN m.value END) AS s1,
           MIN(CASE WHEN m.recorded_at < :hi THEN m.recorded_at END) AS f1,
           SUM(CASE WHEN m.recorded_at < :lo THEN 1 ELSE 0 END) AS c0,
           SUM(CASE WHEN m.recorded_at < :lo THEN m.value END) AS s0,
           MIN(CASE WHEN m.recorded_at < :lo THEN m.recorded_at END) AS f0
    FROM ab_touched t
    {{join}} ab_test_metrics m ON m.experiment_id = t.experiment_id AND m.metric = t.metric
     AND m.user_id = t.user_id
    GROUP BY t.experiment_id, t.metric, t.user_id
  ) y
  LEFT JOIN (
    SELECT t.experiment_id, t.metric, t.user_id,
           SUM(CASE WHEN m.recorded_at < :hi THEN 1 ELSE 0 END) AS xc1,
           SUM(CASE WHEN m.recorded_at < :hi THEN m.value END) AS xs1,
           SUM(CASE WHEN m.recorded_at < :lo THEN 1 ELSE 0 END) AS xc0,
           SUM(CASE WHEN m.recorded_at < :lo THEN m.value END) AS xs0
    FROM ab_touched_pre p
    {{join}} ab_touched t ON t.experiment_id = p.experiment_id AND t.metric = p.metric
    {{join}} ab_test_metrics m ON m.experiment_id = t.experiment_id
     AND m.metric = t.metric || '{PRE_SUFFIX}' AND m.user_id = t.user_id
    GROUP BY t.experiment_id, t.metric, t.user_id
  ) x ON x.experiment_id = y.experiment_id AND x.metric = y.metric AND x.user_id = y.user_id
)"""

# Every user of the selected experiments (a rebuild): one streaming pass over the covering index.
_PER_USER_ALL = f"""
pre_users AS (
  SELECT experiment_id, {_BASE} AS metric, user_id, COUNT(*) AS c, SUM(value) AS s
  FROM ab_test_metrics
  WHERE recorded_at < :hi AND {_IS_PRE} {{experiments}}
  GROUP BY experiment_id, metric, user_id
),
per_user AS (
  SELECT y.experiment_id, y.metric, y.user_id, y.c AS c1, y.s AS s1, y.f AS f1,
         COALESCE(x.c, 0) AS xc1, x.s AS xs1
  FROM (
    SELECT experiment_id, metric, user_id,
           SUM(CASE WHEN recorded_at < :hi THEN 1 ELSE 0 END) AS c,
           SUM(CASE WHEN recorded_at < :hi THEN value END) AS s,
           MIN(CASE WHEN recorded_at < :hi THEN recorded_at END) AS f
    FROM ab_test_metrics
    WHERE {_NOT_PRE} {{experiments}}
    GROUP BY experiment_id, metric, user_id
  ) y
  LEFT JOIN pre_users x ON x.experiment_id = y.experiment_id AND x.metric = y.metric
   AND x.user_id = y.user_id AND y.metric IN (SELECT DISTINCT metric FROM pre_users)
)"""

# Each user's variant (from ``assigned_at``) and pre-period cap.
_USERS = """
users AS (
  SELECT p.*, k.cap AS pre_cap,
         CASE WHEN a.assigned_at < :hi THEN a.variant END AS v1{old_variant}
  FROM per_user p
  LEFT JOIN ab_test_assignments a ON a.experiment_id = p.experiment_id AND a.user_id = p.user_id
  LEFT JOIN ab_metric_caps k ON k.experiment_id = p.experiment_id AND k.metric = p.metric
   AND p.metric IN ({pre_capped})
)"""
_OLD_VARIANT = ",\n         CASE WHEN a.assigned_at < :lo THEN a.variant END AS v0"

# The new contribution of each user (+1) and, incrementally, the old one (−1): one pass over
# ``users`` joined with the two signs (so that it is not materialised twice).
_NEW_SIDE = """
  SELECT experiment_id, v1 AS variant, metric, {day1} AS day, 1 AS sign,
         c1 AS c, s1 AS s, xc1 AS xc, xs1 AS xs, {cap} AS cap
  FROM users WHERE v1 IS NOT NULL AND c1 > 0"""
_BOTH_SIDES = """
  SELECT experiment_id, CASE WHEN sign = 1 THEN v1 ELSE v0 END AS variant, metric,
         CASE WHEN sign = 1 THEN {day1} ELSE {day0} END AS day, sign,
         CASE WHEN sign = 1 THEN c1 ELSE c0 END AS c,
         CASE WHEN sign = 1 THEN s1 ELSE s0 END AS s,
         CASE WHEN sign = 1 THEN xc1 ELSE xc0 END AS xc,
         CASE WHEN sign = 1 THEN xs1 ELSE xs0 END AS xs, {cap} AS cap
  FROM users {cross} (SELECT 1 AS sign UNION ALL SELECT -1 AS sign) signs
  WHERE (sign = 1 AND v1 IS NOT NULL AND c1 > 0) OR (sign = -1 AND v0 IS NOT NULL AND c0 > 0)"""

_VALUED = """
valued AS {materialized}(
  SELECT experiment_id, variant, metric, day, sign, c, s,
         CASE WHEN cap IS NOT NULL AND s / c > cap THEN cap ELSE s / c END AS y,
         CASE WHEN cap IS NOT NULL AND s / c > cap THEN 1 ELSE 0 END AS capped,
         CASE WHEN xc > 0 THEN 1 ELSE 0 END AS hx,
         CASE WHEN xc > 0 AND cap IS NOT NULL AND xs / xc > cap THEN cap
              WHEN xc > 0 THEN xs / xc ELSE 0.0 END AS x
  FROM ({sides}) signed
)"""

_METRIC_SUMS_SQL = """
SELECT experiment_id, variant, metric, day,
       SUM({count}) AS n,
       SUM({signed}CASE WHEN y = 0 OR y = 1 THEN 0 ELSE 1 END) AS n_nonbinary,
       SUM({signed}capped) AS n_capped,
       SUM({signed}y) AS sum_y, SUM({signed}y * y) AS sum_y2,
       SUM({signed}c) AS sum_c, SUM({signed}c * c) AS sum_c2,
       SUM({signed}s) AS sum_s, SUM({signed}s * s) AS sum_s2, SUM({signed}c * s) AS sum_cs,
       SUM({signed}hx) AS n_x, SUM({signed}x) AS sum_x, SUM({signed}x * x) AS sum_x2,
       SUM({signed}x * y) AS sum_xy, SUM({signed}hx * y) AS sum_y_x,
       SUM({signed}x * s) AS sum_xs, SUM({signed}x * c) AS sum_xc,
       SUM({signed}hx * s) AS sum_s_x, SUM({signed}hx * c) AS sum_c_x
FROM valued
GROUP BY experiment_id, variant, metric, day"""

# Quantile metrics. A user's rows in bin b are the positions i_{b-1}+1 … i_b of their rows in
# value order (bins are ordered like the values), so the bin's sums c·(2i − c) and c·n are
# sums over its rows of 2k − 1 and n (k: the row's position, n: the user's rows). Window sums
# in the covering index's order (experiment, metric, user, value): no sort per user and bin.
_HISTOGRAM_TOUCHED = """
bin_rows AS (
  SELECT t.experiment_id, t.metric, t.user_id, m.value,
         CASE WHEN m.recorded_at < :hi THEN 1 ELSE 0 END AS new,
         CASE WHEN m.recorded_at < :lo THEN 1 ELSE 0 END AS old
  FROM ab_touched t
  {join} ab_test_metrics m ON m.experiment_id = t.experiment_id AND m.metric = t.metric
   AND m.user_id = t.user_id
  WHERE t.metric IN :quantile_sources
)"""

# A rebuild's rows are all new: the time condition filters them before the window sums. A
# filter after (``new = 1``) made PostgreSQL expect 0.5 % of the rows, look each one's variant
# up in a nested loop and sort them for the grouping (36–38 s against 24 s at 2.5 M users).
_HISTOGRAM_ALL = """
bin_rows AS (
  SELECT experiment_id, metric, user_id, value, 1 AS new, 0 AS old
  FROM ab_test_metrics
  WHERE metric IN :quantile_sources AND recorded_at < :hi {experiments}
)"""

_HISTOGRAM_USERS = f""",
ranked AS (
  SELECT experiment_id, metric, user_id, {_bin("value")} AS bin, new, old,
         SUM(new) OVER upto AS k1, SUM(new) OVER whole AS n1{{old_ranks}}
  FROM bin_rows
  WINDOW upto AS (PARTITION BY experiment_id, metric, user_id ORDER BY value
                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
         whole AS (PARTITION BY experiment_id, metric, user_id ORDER BY value
                   ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
),
users AS (
  SELECT q.*, CASE WHEN a.assigned_at < :hi THEN a.variant END AS v1{{old_variant}}
  FROM ranked q
  LEFT JOIN ab_test_assignments a ON a.experiment_id = q.experiment_id AND a.user_id = q.user_id
)"""
_OLD_RANKS = ",\n         SUM(old) OVER upto AS k0, SUM(old) OVER whole AS n0"
_HISTOGRAM_NEW_SIDE = """
  SELECT experiment_id, v1 AS variant, metric, bin, 1 AS c, 2 * k1 - 1 AS sq, n1 AS cross_rows
  FROM users WHERE v1 IS NOT NULL"""
_HISTOGRAM_BOTH_SIDES = """
  SELECT experiment_id, CASE WHEN sign = 1 THEN v1 ELSE v0 END AS variant, metric, bin,
         sign AS c,
         CASE WHEN sign = 1 THEN 2 * k1 - 1 ELSE 1 - 2 * k0 END AS sq,
         CASE WHEN sign = 1 THEN n1 ELSE -n0 END AS cross_rows
  FROM users {cross} (SELECT 1 AS sign UNION ALL SELECT -1 AS sign) signs
  WHERE (sign = 1 AND v1 IS NOT NULL AND new = 1) OR (sign = -1 AND v0 IS NOT NULL AND old = 1)"""
_HISTOGRAM_SUMS_SQL = """
SELECT experiment_id, variant, metric, bin,
       SUM(c) AS n_rows, SUM(sq) AS sq_rows, SUM(cross_rows) AS cross_rows
FROM ({sides}) signed
GROUP BY experiment_id, variant, metric, bin"""

ASSIGNMENT_SUMS_SQL = f"""
SELECT experiment_id, variant, {_day("assigned_at")} AS day, COUNT(*) AS n_assigned
FROM ab_test_assignments
WHERE assigned_at >= :lo AND assigned_at < :hi {{experiments}}
GROUP BY experiment_id, variant, {_day("assigned_at")}"""

# The pre-period cap: the q-quantile (inverted CDF) of the users' pre-period means, pooled.
_PRE_CAPS_SQL = f"""
WITH pre AS (
  SELECT m.experiment_id, AVG(m.value) AS x
  FROM ab_test_metrics m
  JOIN ab_test_assignments a ON a.experiment_id = m.experiment_id AND a.user_id = m.user_id
  WHERE m.metric = :pre_metric AND m.recorded_at < :hi AND a.assigned_at < :hi
    AND m.experiment_id NOT IN (SELECT experiment_id FROM ab_metric_caps WHERE metric = :metric)
    {{experiments}}
  GROUP BY m.experiment_id, m.user_id
),
ranked AS (
  SELECT experiment_id, x,
         ROW_NUMBER() OVER (PARTITION BY experiment_id ORDER BY x) AS rank_x,
         COUNT(*) OVER (PARTITION BY experiment_id) AS pre_users
  FROM pre
)
SELECT experiment_id, :metric AS metric, MIN(x) AS cap, MIN(pre_users) AS pre_users
FROM ranked
WHERE rank_x >= :quantile * pre_users - 1e-9 AND pre_users >= {MIN_PRE_USERS}
GROUP BY experiment_id"""


def missing_caps(
    metric: str,
    quantile: float,
    hi: datetime,
    experiment_ids: Sequence[str] | None,
    into: str = "",
) -> TextClause:
    """The caps of ``metric`` (at its pre-period ``quantile``) not yet in ``ab_metric_caps``
    that rows before ``hi`` fix, in the experiments (all: ``None``): rows ``experiment_id,
    metric, cap, pre_users``. ``into`` prefixes the query (``INSERT INTO … ``)."""
    scope = _experiments_filter("m.experiment_id", experiment_ids)
    return statement(
        into + _PRE_CAPS_SQL.format(experiments=scope),
        pre_metric=metric + PRE_SUFFIX,
        metric=metric,
        quantile=quantile,
        hi=hi,
        ids=list(experiment_ids or []),
    )


ADDITIVE = {
    "ab_metric_daily": (("experiment_id", "variant", "metric", "day"), AB_METRIC_SUMS),
    "ab_metric_histogram": (("experiment_id", "variant", "metric", "bin"), AB_HISTOGRAM_SUMS),
    "ab_assignment_daily": (("experiment_id", "variant", "day"), ("n_assigned",)),
}
"""The stored tables of sums: their key columns and their additive columns."""
EMPTIED = {"ab_metric_daily": "n", "ab_metric_histogram": "n_rows", "ab_assignment_daily": ""}
"""The count whose zero means a row sums nobody any more (deleted after a subtraction)."""


def shaped(table: str, select_sql: str) -> str:
    """``select_sql``'s columns in the order of ``table``'s keys and sums."""
    keys, sums = ADDITIVE[table]
    return f"SELECT {', '.join((*keys, *sums))} FROM ({select_sql}) change"


def statement(sql: str, **params: Any) -> TextClause:
    """``sql`` with typed time bounds; list values become expanding ``IN`` parameters."""
    used = {name: value for name, value in params.items() if re.search(rf":{name}\b", sql)}
    binds = [
        bindparam(name, type_=DateTime(timezone=True))
        if name in _TIME_PARAMS
        else bindparam(name, expanding=True)
        for name, value in used.items()
        if name in _TIME_PARAMS or isinstance(value, list)
    ]
    return text(sql).bindparams(*binds, **used)


def _experiments_filter(column: str, experiment_ids: Sequence[str] | None) -> str:
    return "" if experiment_ids is None else f"AND {column} IN :ids"


def prepare_connection(connection: Connection) -> None:
    """Settings for the sums' statements, for this connection (SQLite) or transaction (PG).

    SQLite sorts with a worker thread per core (the GROUP BYs sort millions of per-user rows)
    and, in builds without the math functions, uses Python's (slower, same results).
    PostgreSQL sorts a day's touched users in memory, and does not memoize the per-user index
    lookups: the planner expects a few rows per user where each lookup is a miss (0.5 s of a
    3.8 s fold at platform scale).
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        if (connection.dialect.server_version_info or (0,)) >= (14,):
            connection.exec_driver_sql("SET LOCAL enable_memoize = off")
    elif connection.dialect.name == "sqlite":
        prepare_sqlite(connection)


@contextmanager
def by_index_lookups(connection: Connection) -> Iterator[None]:
    """PostgreSQL: the statements inside reach each touched user's rows by index lookups.

    Its planner prices a day's hundreds of thousands of lookups above a hash join over all of
    ``ab_test_metrics``, which took 2.5× longer (16.5 s against 6.5 s for 450,000 user × metric
    pairs among 17 million rows), and compiles them with JIT (0.8 s not repaid). Nothing on
    other databases. No ``finally``: after an error the transaction is rolled back anyway.
    """
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL jit = off")
    yield
    if postgres:
        connection.exec_driver_sql("SET LOCAL enable_seqscan = DEFAULT")
        connection.exec_driver_sql("SET LOCAL jit = DEFAULT")


class Delta:
    """SQL producing the change of every sum between two states of the raw tables."""

    def __init__(self, settings: AbSettings, dialect: str) -> None:
        # SQLite has no statistics on the temporary table: CROSS JOIN keeps it the outer loop.
        self.join = "CROSS JOIN" if dialect == "sqlite" else "JOIN"
        # SQLite would inline ``valued`` into each of the nineteen SUMs, every one evaluating
        # its CASEs again: materialised, a daily fold's metric sums take 7.0 s, not 8.4 s.
        self.materialized = "MATERIALIZED " if dialect == "sqlite" else ""
        self.cross = "CROSS JOIN"
        self.quantile_sources = list(settings.quantile_sources)
        self.log_step = math.log1p(settings.statistics.histogram_bin_width)
        self.pre_capped = sorted(settings.pre_period_quantiles)
        self.absolute_caps = {
            name: cap.absolute for name, cap in settings.caps.items() if cap.absolute is not None
        }

    def _cap_expression(self) -> str:
        if not self.absolute_caps:
            return "pre_cap"
        cases = " ".join(
            f"WHEN {literal(name)} THEN {value!r}"
            for name, value in sorted(self.absolute_caps.items())
        )
        return f"COALESCE(pre_cap, CASE metric {cases} END)"

    def _users(self, incremental: bool) -> str:
        # only the rows of metrics capped at a pre-period quantile look their cap up
        pre_capped = ", ".join(literal(name) for name in self.pre_capped) or "NULL"
        return _USERS.format(pre_capped=pre_capped, old_variant=_OLD_VARIANT if incremental else "")

    def metric_sql(self, per_user: str, incremental: bool) -> str:
        cap, day = self._cap_expression(), _day
        sides = (
            _BOTH_SIDES.format(day1=day("f1"), day0=day("f0"), cap=cap, cross=self.cross)
            if incremental
            else _NEW_SIDE.format(day1=day("f1"), cap=cap)
        )
        users = self._users(incremental)
        # a first run adds every user once: no sign to multiply by (3 % of its time on SQLite)
        sums = _METRIC_SUMS_SQL.format(
            count="sign" if incremental else "1", signed="sign * " if incremental else ""
        )
        valued = _VALUED.format(sides=sides, materialized=self.materialized)
        return f"WITH {per_user},{users},{valued}{sums}"

    def histogram_sql(self, rows: str, incremental: bool) -> str | None:
        if not self.quantile_sources:
            return None
        sides = (
            _HISTOGRAM_BOTH_SIDES.format(cross=self.cross) if incremental else _HISTOGRAM_NEW_SIDE
        )
        users = _HISTOGRAM_USERS.format(
            old_ranks=_OLD_RANKS if incremental else "",
            old_variant=_OLD_VARIANT if incremental else "",
        )
        return f"WITH {rows}{users}{_HISTOGRAM_SUMS_SQL.format(sides=sides)}"

    def params(
        self, lo: datetime, hi: datetime, experiment_ids: Sequence[str] | None
    ) -> dict[str, Any]:
        return {
            "lo": lo,
            "hi": hi,
            "log_step": self.log_step,
            "quantile_sources": self.quantile_sources,
            "ids": list(experiment_ids or []),
        }

    def window(self) -> list[tuple[str, str]]:
        """(table, SELECT) pairs of the change that the rows of ``ab_touched``'s users make from
        rows before ``:lo`` to rows before ``:hi``: the metric sums and histograms (the
        assignments' change is :data:`ASSIGNMENT_SUMS_SQL` over the window)."""
        pairs = [
            ("ab_metric_daily", self.metric_sql(_PER_USER_TOUCHED.format(join=self.join), True)),
            (
                "ab_metric_histogram",
                self.histogram_sql(_HISTOGRAM_TOUCHED.format(join=self.join), True),
            ),
        ]
        return [(table, sql) for table, sql in pairs if sql is not None]

    def everything(self, experiment_ids: Sequence[str] | None) -> list[tuple[str, str | None]]:
        """(table, SELECT) pairs of all rows before ``hi`` of the experiments (all: ``None``)."""
        scope = _experiments_filter("experiment_id", experiment_ids)
        return [
            ("ab_metric_daily", self.metric_sql(_PER_USER_ALL.format(experiments=scope), False)),
            (
                "ab_metric_histogram",
                self.histogram_sql(_HISTOGRAM_ALL.format(experiments=scope), False),
            ),
            ("ab_assignment_daily", ASSIGNMENT_SUMS_SQL.format(experiments=scope)),
        ]
