"""Online monitoring of the served models: plain functions over ``model_metrics`` and ``labels``.

:mod:`~mixai_ml.monitoring.queries` (SQL aggregates), :mod:`~mixai_ml.monitoring.windows`
(windows, latency quantiles, settings), :mod:`~mixai_ml.monitoring.accuracy` (online accuracy),
:mod:`~mixai_ml.monitoring.alerts` and :mod:`~mixai_ml.monitoring.report`. See
``docs/monitoring.md``.
"""
