"""Sufficient statistics of every experiment, kept in the database and updated from new rows only.

Raw rows never leave the database. Tables of migration 20 (:mod:`mixai_ml.db.schema`) hold sums
over users, never user ids:

* ``ab_assignment_daily``: assigned users per experiment × variant × day of assignment;
* ``ab_metric_daily``: per experiment × variant × metric × day (the UTC date of the user's first
  row of the metric) the sums over users of their values. For a user with ``c`` rows of the
  metric summing to ``s``, value ``y = s/c`` (capped: ``min(y, cap)``) and pre-exposure value
  ``x`` (the mean of their ``<metric>__pre`` rows, capped alike; ``hx`` = 1 when present):
  ``n`` = Σ1, ``n_nonbinary`` = Σ[y ∉ {0, 1}], ``n_capped`` = Σ[y was capped], ``sum_y`` = Σy,
  ``sum_y2`` = Σy², ``sum_c`` = Σc, ``sum_c2`` = Σc², ``sum_s`` = Σs, ``sum_s2`` = Σs²,
  ``sum_cs`` = Σcs, ``n_x`` = Σhx, ``sum_x`` = Σx, ``sum_x2`` = Σx², ``sum_xy`` = Σxy,
  ``sum_y_x`` = Σhx·y, ``sum_xs`` = Σxs, ``sum_xc`` = Σxc, ``sum_s_x`` = Σhx·s,
  ``sum_c_x`` = Σhx·c. Means use ``y``, ratio metrics ``(s, c)``, CUPED ``x``;
* ``ab_metric_histogram``: for the rows of quantile metrics, per experiment × variant × metric ×
  log-spaced bin the sums of :mod:`mixai_ml.ab.quantile`;
* ``ab_metric_caps``: the cap fixed for each experiment × metric capped at a pre-period quantile;
* ``ab_statistics_state`` (which days are stored, what shaped the sums) and ``ab_folded_days``
  (the raw row counts of the last stored days).

**Incremental.** ``ab_statistics_state.folded_before`` (a UTC midnight) says which rows the
tables hold: those recorded before it. A refresh *folds* the days from there up to
``today − lookback_days``: it finds the users with rows recorded in those days (the index on
``recorded_at``), computes each one's contribution from all their rows before and after the new
days, and adds the difference (new − old) to the sums. The cost is proportional to the new rows
and their users' history, not to the tables. Today's rows (and those of the last
``lookback_days`` days) are added the same way inside a savepoint, read, and rolled back:
never stored. A variant counts
from the user's ``assigned_at``.

**Late rows.** Each refresh recounts the raw rows of the last ``late_check_days`` stored days;
a day that gained (or lost) rows since it was stored triggers a rebuild, so late rows are never
silently missed.

**Rebuild.** Everything is recomputed from the raw rows when the state is missing, when what
shapes the sums changes (the caps, the quantile metrics, the bin width:
:meth:`AbSettings.statistics_definition`), when late rows are found, or on demand
(``statistics.rebuild: true``). Incremental and full give the same sums (tested).

**Deletions.** :func:`forget_users` subtracts users' contributions (and their rows from the day
counts) before their rows are deleted: the purge calls it in its transaction.

The SQL is plain enough for SQLite (≥ 3.35, with its math functions) and PostgreSQL alike.
"""

from mixai_ml.ab.store.read import HISTOGRAM_COLUMNS, SHARE_SPREAD, AbStatistics
from mixai_ml.ab.store.refresh import forget_users, refresh_statistics

__all__ = [
    "HISTOGRAM_COLUMNS",
    "SHARE_SPREAD",
    "AbStatistics",
    "forget_users",
    "refresh_statistics",
]
