"""The console's state: the project it works on, its database, operators, sessions."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from kedro.framework.context import KedroContext
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import DatasetError
from sqlalchemy import Engine

from mixai_inference.ood import DEFAULT_POLICY
from mixai_inference.tasks import task_names
from mixai_ml.ab.config import AbSettings
from mixai_ml.admin.passwords import check_hash, hash_password, verify_password
from mixai_ml.admin.runs import RunSettings
from mixai_ml.admin.security import LoginThrottle, SessionStore
from mixai_ml.monitoring.windows import MonitoringSettings
from mixai_ml.parameters import settings_section

PASSWORD_HASH_ENV = "MIXAI_ADMIN_PASSWORD_HASH"
OPERATOR_ENV = "MIXAI_ADMIN_USER"
CRON_SECRET_ENV = "CRON_SECRET"
DEFAULT_OPERATOR = "admin"


def operators_from(credentials: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Operator name → password hash: ``credentials.yml``'s ``mixai_admin.operators``, plus
    ``MIXAI_ADMIN_USER`` (default ``admin``) with ``MIXAI_ADMIN_PASSWORD_HASH`` when set.

    Raises:
        ValueError: If a configured value is not a password hash (e.g. a plain password).
    """
    configured = dict((credentials.get("mixai_admin") or {}).get("operators") or {})
    if environ.get(PASSWORD_HASH_ENV):
        configured[environ.get(OPERATOR_ENV) or DEFAULT_OPERATOR] = environ[PASSWORD_HASH_ENV]
    operators = {}
    for name, encoded in configured.items():
        try:
            check_hash(str(encoded))
        except ValueError as error:
            raise ValueError(f"operator {name!r}: {error}") from None
        operators[str(name)] = str(encoded)
    return operators


class Console:
    """Everything the console's routes share.

    Args:
        project: The Kedro project whose database, bundle and configuration the console uses.
        secure_cookies: Mark the session cookie ``Secure`` (anywhere but on loopback).
        environ: Where ``CRON_SECRET`` and the operator variables are read.
    """

    def __init__(
        self,
        project: Path,
        *,
        secure_cookies: bool,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.project = project.resolve()
        bootstrap_project(self.project)
        with KedroSession.create(project_path=self.project) as session:
            self.context: KedroContext = cast(KedroSession, session).load_context()
        self.engine: Engine = self.context.catalog.load("app_db")
        params = self.context.params
        # every setting is checked at start, so a typo stops the console, not a page
        admin = settings_section(params["admin"], "admin", required=("session", "login", "runs"))
        self.run_settings = RunSettings.from_params(admin["runs"], self.project)
        self.operators = operators_from(self.context.config_loader["credentials"], environ)
        self.cron_secret = environ.get(CRON_SECRET_ENV) or None
        self.secure_cookies = secure_cookies
        session_settings = settings_section(
            admin["session"], "admin.session", required=("idle_minutes", "max_hours")
        )
        self.sessions = SessionStore(
            60.0 * float(session_settings["idle_minutes"]),
            3600.0 * float(session_settings["max_hours"]),
        )
        login = settings_section(
            admin["login"], "admin.login", required=("max_failures", "window_minutes")
        )
        self.throttle = LoginThrottle(
            int(login["max_failures"]), 60.0 * float(login["window_minutes"])
        )
        self.monitoring = MonitoringSettings.from_params(params["monitoring"])
        self.ab_settings = AbSettings.from_params(params["ab_analysis"])
        # one change at a time: registry changes rewrite the whole registry and the bundle
        self.change_lock = threading.Lock()
        # checked for unknown operators, so a wrong name costs as long as a wrong password
        self._decoy = hash_password("not an operator")

    @property
    def database_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    def check_password(self, operator: str, password: str) -> bool:
        """Whether ``operator`` exists and ``password`` is theirs (same cost either way)."""
        encoded = self.operators.get(operator)
        matches = verify_password(password, encoded or self._decoy)
        return encoded is not None and matches

    def _optional(self, dataset: str) -> Any:
        """``dataset`` from the catalog, or ``None`` before the pipeline that writes it ran."""
        try:
            return self.context.catalog.load(dataset)
        except DatasetError:
            return None

    def bundle_flags(self) -> dict[str, bool]:
        """The flag defaults of the project's bundle (empty when there is no bundle yet)."""
        manifest = self._optional("model_bundle")
        return dict(manifest.flags) if manifest is not None else {}

    def bundle_ood_policies(self) -> dict[str, str]:
        """Each task's out-of-distribution policy without the console's: its bundle's, else the
        package default."""
        manifest = self._optional("model_bundle")
        entries = manifest.tasks if manifest is not None else {}
        policies = {}
        for task in task_names():
            entry = entries.get(task)
            policies[task] = (entry.ood_policy if entry else None) or DEFAULT_POLICY
        return policies

    def promotion_decisions(self) -> dict[str, dict[str, Any]]:
        """The last evaluation's promotion decision per task (``promotion_decision.json``)."""
        return dict(self._optional("promotion_decision") or {})
