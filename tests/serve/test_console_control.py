"""A flag switched on the operator's console (in Chromium) is obeyed by ``mixai-serve`` on the
same database within its refresh interval."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from service_support import Service

from admin_support import admin_server, browser_login, chromium_page
from mixai_inference.tasks import MASTER_REG
from project_copy import copy_project

pytestmark = pytest.mark.slow
REFRESH_S = 2.0
SLACK_S = 5.0
"""A request, a page load and a loaded CI machine on top of the refresh interval."""


def switch(page: Any, flag: str, state: str) -> float:
    """Switch ``flag`` to ``state`` on the overview; when the console confirmed it."""
    row = page.locator(f"#flag-{flag}")
    if row.locator(".switch").inner_text() != state:
        row.get_by_role("button", name=f"Switch {state}").click()
        page.wait_for_load_state()
    assert row.locator(".switch").inner_text() == state
    return time.monotonic()


def test_the_service_obeys_a_flag_switched_on_the_console(
    tmp_path: Path,
    bundle: Path,
    sqlite_db: str,
    start_service: Callable[..., Service],
) -> None:
    service = start_service(bundle, sqlite_db, MIXAI_CONTROL_REFRESH_S=str(REFRESH_S))
    client = service.client()

    def reason() -> str:
        status, answer = client.predict("user-1")
        assert status == 200, answer
        return str(answer[MASTER_REG]["reason"])

    project = copy_project(tmp_path / "project")
    with admin_server(project, db_url=sqlite_db) as console, chromium_page() as page:
        browser_login(page, console)
        for state, obeyed in (
            ("on", lambda: reason() != "disabled"),
            ("off", lambda: reason() == "disabled"),
            ("on", lambda: reason() != "disabled"),
        ):
            switched = switch(page, "enable_cpu_ml", state)
            service.wait_until(obeyed, REFRESH_S + SLACK_S, f"enable_cpu_ml {state}")
            print(f"enable_cpu_ml {state}: obeyed {time.monotonic() - switched:.2f} s after")
