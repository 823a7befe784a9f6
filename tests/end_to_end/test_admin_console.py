"""The operator's console in a real browser (Debian's Chromium) on a copy of the tiny demo:
log in, switch a flag, change a rollout, train one task until it succeeds, read the audit log."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from admin_support import OPERATOR, AdminServer, admin_server, browser_login, chromium_page
from mixai_inference.bundle import read_manifest
from mixai_ml.db import schema
from project_copy import write_local_params
from tiny_world import TINY

pytestmark = pytest.mark.slow
TRAINING_TIMEOUT_S = 900
SCREENSHOTS = os.environ.get("MIXAI_CONSOLE_SCREENSHOTS")
"""A folder to save the console's pages in (``docs/_scripts/console_screenshots.py``)."""


@pytest.fixture
def console(tiny_project: Path, tmp_path: Path) -> Iterator[AdminServer]:
    """The console on a copy of the tiny demo whose own `kedro run`s use the tiny settings."""
    project = Path(shutil.copytree(tiny_project, tmp_path / "tiny", symlinks=True))
    write_local_params(project, TINY)
    with admin_server(project) as server:
        yield server


def shot(page: Any, folder: Path, name: str) -> None:
    for target in filter(None, (folder, Path(SCREENSHOTS) if SCREENSHOTS else None)):
        target.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target / f"admin_{name}.png"), full_page=True)


def row_of(page: Any, selector: str, text: str) -> Any:
    return page.locator(selector).filter(has_text=text).first


def test_an_operator_runs_ml_from_the_console(console: AdminServer, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    engine = create_engine(console.db_url)
    with chromium_page(viewport={"width": 1400, "height": 900}) as page:
        browser_login(page, console)
        assert page.get_by_role("heading", name="Overview").is_visible()

        # a flag: off from the console, stored for the inference service
        flag = page.locator("#flag-enable_preset_recommendation")
        assert flag.locator(".switch").inner_text() == "on"
        flag.get_by_role("button", name="Switch off").click()
        page.wait_for_load_state()
        assert "enable_preset_recommendation is now off" in page.locator(".flash").inner_text()
        assert flag.locator(".switch").inner_text() == "off"
        assert "this console" in flag.inner_text()
        with engine.connect() as connection:
            stored = connection.execute(
                select(schema.ml_feature_flags.c.enabled).where(
                    schema.ml_feature_flags.c.flag == "enable_preset_recommendation"
                )
            ).scalar_one()
        assert stored is False
        shot(page, shots, "overview")

        # a rollout: the registry and the bundle follow
        page.get_by_role("link", name="Models", exact=True).click()
        section = page.locator("#task-master_reg")
        section.get_by_label("rollout of master_reg (%)").fill("25")
        section.get_by_role("button", name="Set rollout").click()
        page.wait_for_load_state()
        assert "at 25 %" in page.locator(".flash").inner_text()
        manifest = read_manifest(console.project / "data" / "06_models" / "bundle")
        active = manifest.tasks["master_reg"].active
        assert active is not None
        assert active.rollout_pct == 25.0
        shot(page, shots, "models")

        # train one task now: its own process, queued → running → succeeded
        page.get_by_role("link", name="Training", exact=True).click()
        page.get_by_label("Task").select_option("master_reg")
        page.get_by_role("button", name="Train now").click()
        page.wait_for_load_state()
        assert "training of master_reg queued" in page.locator(".flash").inner_text()
        run_id = page.locator(".flash").inner_text().rsplit(" ", 1)[-1]
        deadline = time.monotonic() + TRAINING_TIMEOUT_S
        while True:
            page.reload()
            run = row_of(page, "tr", run_id)
            status = run.locator(".status").inner_text()
            if status in ("succeeded", "failed") or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert status == "succeeded", run.inner_text()
        job = row_of(page, "tr", "master_reg-")
        assert job.locator(".status").inner_text() == "succeeded"
        shot(page, shots, "training")
        with engine.connect() as connection:
            jobs = schema.training_jobs
            trained = connection.execute(
                select(jobs.c.status, jobs.c.model_version, jobs.c.n_samples).where(
                    jobs.c.run_id == run_id
                )
            ).one()
        assert trained.status == "succeeded"
        assert trained.model_version
        assert trained.n_samples
        page.get_by_role("link", name="Models", exact=True).click()
        assert page.locator("#task-master_reg").get_by_text(trained.model_version).count() >= 1

        # every change in the audit log, with who made it
        page.get_by_role("link", name="Audit log").click()
        audit = page.locator("table.audit tbody")
        for action in ("session.login", "flag.set", "model.rollout", "training.queue"):
            assert row_of(audit, "tr", action).locator("td").nth(1).inner_text() == OPERATOR
        shot(page, shots, "audit")
        for name in ("experiments", "monitoring", "privacy"):
            page.get_by_role("link", name=name.capitalize(), exact=True).click()
            assert page.locator("h1").inner_text() == name.capitalize()
            # every plot drawn on the server arrived as a picture
            page.wait_for_load_state("load")  # the images too (no script may run: the CSP)
            widths = page.eval_on_selector_all("img", "images => images.map(i => i.naturalWidth)")
            assert all(width > 0 for width in widths), (name, widths)
            shot(page, shots, name)
