"""A/B statistics: plain functions over sufficient statistics (no Kedro).

Modules: :mod:`~mixai_ml.ab.stats` (Welch t, two-proportion z, delta-method lift,
non-inferiority, multiple testing), :mod:`~mixai_ml.ab.cuped`, :mod:`~mixai_ml.ab.sequential`
(always-valid confidence sequences), :mod:`~mixai_ml.ab.srm`, :mod:`~mixai_ml.ab.power`,
:mod:`~mixai_ml.ab.config`, :mod:`~mixai_ml.ab.analysis` (every experiment, decisions) and
:mod:`~mixai_ml.ab.report`. Methods and tuning: ``docs/ab_testing.md``.
"""
