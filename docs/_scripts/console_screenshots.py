"""Take docs/img/admin_*.png: the operator's console on the demo data (docs/admin.md).

Usage: ``.venv/bin/python docs/_scripts/console_screenshots.py [--demo DATA]`` after ``make demo``
(``DATA``: the demo's data folder, default ``data/``; it is only read).

The console runs on a copy of the demo's database, bundle and reports (the demo itself is left
as it is), with a throwaway operator, and Debian's Chromium (``/usr/bin/chromium``) is driven
through a few changes an operator would make: a flag, an out-of-distribution policy, a
rollout, an experiment, a purge. One demo user withdraws five hours before, so the privacy page
has a withdrawal to show.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, select, update

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from admin_support import admin_server, browser_login, chromium_page  # noqa: E402
from mixai_ml.db import schema  # noqa: E402

OUTPUT = ROOT / "docs" / "img"
LINKED = ("01_raw",)
"""The demo's audio, only read; everything else is copied, as the purge rewrites files."""


def demo_copy(demo: Path, folder: Path) -> Path:
    """The project's configuration and the demo's database and artefacts (audio linked)."""
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, folder)
    shutil.copytree(ROOT / "conf", folder / "conf", ignore=shutil.ignore_patterns("local"))
    (folder / "conf" / "local").mkdir()
    (folder / "src").mkdir()
    data = folder / "data"
    data.mkdir()
    for entry in demo.iterdir():
        if entry.name in LINKED:
            (data / entry.name).symlink_to(entry.resolve())
        else:
            copy = shutil.copytree if entry.is_dir() else shutil.copy
            copy(entry, data / entry.name)
    return folder


def withdraw_one_user(database: Path, hours_ago: float) -> None:
    """A consenting user with features withdraws ``hours_ago`` (the purge has not run since)."""
    engine = create_engine(f"sqlite:///{database}")
    consent, jobs, features = schema.ml_consent, schema.jobs, schema.features_store
    with engine.begin() as connection:
        user = connection.execute(
            select(jobs.c.user_id)
            .join(features, features.c.job_id == jobs.c.job_id)
            .join(consent, consent.c.user_id == jobs.c.user_id)
            .where(consent.c.consented.is_(True), consent.c.withdrawn_at.is_(None))
            .limit(1)
        ).scalar_one()
        when = datetime.now(UTC) - timedelta(hours=hours_ago)
        connection.execute(
            update(consent)
            .where(consent.c.user_id == user)
            .values(consented=False, withdrawn_at=when, updated_at=when)
        )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "data", help="the demo's data")
    demo = parser.parse_args().demo
    if not (demo / "mixai.db").is_file():
        sys.exit(f"no demo data in {demo}: run `make demo` first")
    with tempfile.TemporaryDirectory(prefix="mixai-console-") as temporary:
        project = demo_copy(demo, Path(temporary))
        withdraw_one_user(project / "data" / "mixai.db", hours_ago=5)
        with (
            admin_server(project) as server,
            chromium_page(viewport={"width": 1360, "height": 900}) as page,
        ):
            browser_login(page, server)
            page.locator("#flag-enable_cpu_ml").get_by_role("button").click()
            page.get_by_role("link", name="Models", exact=True).click()
            policy = page.get_by_label("out-of-distribution policy of master_reg")
            policy.select_option("fallback")
            page.locator("#ood-master_reg").get_by_role("button", name="Set policy").click()
            section = page.locator("#task-preset_cls")
            section.get_by_label("rollout of preset_cls (%)").fill("50")
            section.get_by_role("button", name="Set rollout").click()
            page.get_by_role("link", name="Experiments", exact=True).click()
            page.get_by_label("Experiment id").fill("preset-v2-trial")
            page.get_by_label("Task").select_option("preset_cls")
            page.get_by_role("button", name="Create as draft").click()
            page.get_by_role("link", name="Privacy", exact=True).click()
            page.screenshot(path=str(OUTPUT / "admin_privacy.png"), full_page=True)
            page.get_by_role("button", name="Purge now").click()
            for _ in range(120):  # the purge run, in its own process
                page.reload()
                if page.locator("td .status").first.inner_text() in ("succeeded", "failed"):
                    break
                time.sleep(2)
            for name, path in (
                ("overview", ""),
                ("models", "/models"),
                ("experiments", "/experiments"),
                ("monitoring", "/monitoring?window=7d"),
                ("training", "/training"),
                ("audit", "/audit"),
            ):
                page.goto(f"{server.url}/admin/ml{path}")
                page.screenshot(path=str(OUTPUT / f"admin_{name}.png"), full_page=True)
                print(f"docs/img/admin_{name}.png")


if __name__ == "__main__":
    main()
