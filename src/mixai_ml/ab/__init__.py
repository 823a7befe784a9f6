"""A/B statistics: plain functions over sufficient statistics (no Kedro).

Modules: :mod:`~mixai_ml.ab.stats` (Welch t, two-proportion z, delta-method lift,
non-inferiority), :mod:`~mixai_ml.ab.multiplicity`, :mod:`~mixai_ml.ab.cuped`,
:mod:`~mixai_ml.ab.ratio`, :mod:`~mixai_ml.ab.quantile`, :mod:`~mixai_ml.ab.sequential`
(always-valid confidence sequences), :mod:`~mixai_ml.ab.srm`, :mod:`~mixai_ml.ab.power`,
:mod:`~mixai_ml.ab.config`; :mod:`~mixai_ml.ab.store` (the sums kept in the database),
:mod:`~mixai_ml.ab.analysis` (every experiment: :mod:`~mixai_ml.ab.effects`,
:mod:`~mixai_ml.ab.comparisons`, :mod:`~mixai_ml.ab.decisions`), :mod:`~mixai_ml.ab.explain` and
:mod:`~mixai_ml.ab.report`. Methods and tuning: ``docs/ab_testing.md``.
"""
