"""``mixai-admin``: the operator's console ``/admin/ml`` and the triggers ``/api/cron/*``.

:mod:`~mixai_ml.admin.app` (routes), :mod:`~mixai_ml.admin.console` (project, operators,
sessions), :mod:`~mixai_ml.admin.views` (what pages show), :mod:`~mixai_ml.admin.actions`
(changes, each audited), :mod:`~mixai_ml.admin.runs` and :mod:`~mixai_ml.admin.runner`
(training and purge runs in their own process). See ``docs/admin.md``.
"""
