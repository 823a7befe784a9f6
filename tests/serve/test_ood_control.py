"""The out-of-distribution policy of a task switched in ``ml_task_settings`` while the service
runs (CONTRACTS §9: environment → database → bundle)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bundle_factory import feature_scales, reference_for, typical_features
from service_support import Client, Service, migrated, serve_bundle
from sqlalchemy import create_engine
from test_service import execute

from mixai_inference import FEATURE_NAMES
from mixai_inference.tasks import MASTER_REG
from mixai_ml.db.migrations import MIGRATIONS, apply_migrations

NEAR = typical_features(FEATURE_NAMES)
FAR = NEAR + 25.0 * feature_scales(FEATURE_NAMES)  # every feature 25 spreads from training
SWITCH_S = 5.0
"""A change shows within this: the tests' control refresh is 1 s (slack for a busy machine)."""


@pytest.fixture(scope="module")
def guarded_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """master_reg ships a training reference; its bundle turns the guard ``off``."""
    return serve_bundle(
        tmp_path_factory.mktemp("guarded") / "bundle",
        references={MASTER_REG: reference_for(MASTER_REG, names=FEATURE_NAMES)},
        ood_policy={MASTER_REG: "off"},
    )


def set_policy(url: str, policy: str | None) -> None:
    """What an operator (or the admin console) does: one row per task, or none."""
    execute(url, "DELETE FROM ml_task_settings WHERE task = :task", task=MASTER_REG)
    if policy is not None:
        execute(
            url,
            "INSERT INTO ml_task_settings (task, ood_policy, updated_at, updated_by) "
            "VALUES (:task, :policy, CURRENT_TIMESTAMP, 'test')",
            task=MASTER_REG,
            policy=policy,
        )


def master(client: Client, features: Any) -> dict[str, Any]:
    status, answer = client.call("POST", "/v1/predict", {"features": features.tolist()})
    assert status == 200, answer
    return dict(answer[MASTER_REG])


@pytest.mark.slow
def test_the_database_switches_the_policy_while_the_service_runs(
    guarded_bundle: Path, db_url: str, start_service: Callable[..., Service]
) -> None:
    url = migrated(db_url)
    service = start_service(guarded_bundle, url)
    client = service.client()
    assert master(client, FAR)["ood_score"] is None  # the bundle's policy: off

    set_policy(url, "fallback")
    far = service.wait_until(
        lambda: (a := master(client, FAR))["source"] == "rules" and a,
        what="fallback",
        timeout=SWITCH_S,
    )
    assert far["reason"] == "out_of_distribution"
    assert far["ood"] is True
    assert far["ood_score"] > 0
    near = master(client, NEAR)
    assert (near["source"], near["ood"]) == ("ml", False)

    set_policy(url, "flag")
    flagged = service.wait_until(
        lambda: (a := master(client, FAR))["source"] == "ml" and a, what="flag", timeout=SWITCH_S
    )
    assert (flagged["reason"], flagged["ood"]) == (None, True)

    set_policy(url, None)  # no row: the bundle's policy again
    service.wait_until(
        lambda: master(client, FAR)["ood_score"] is None, what="the bundle's", timeout=SWITCH_S
    )

    # the operator's environment beats the database
    set_policy(url, "fallback")
    service.stop()
    pinned = start_service(guarded_bundle, url, MIXAI_OOD_POLICY="flag").client()
    answer = master(pinned, FAR)
    assert (answer["source"], answer["ood"]) == ("ml", True)


def test_a_database_without_the_settings_table_is_not_ready(
    bundle: Path, sqlite_url: str, start_service: Callable[..., Service]
) -> None:
    engine = create_engine(sqlite_url)
    apply_migrations(engine, [m for m in MIGRATIONS if m.version < 16])
    engine.dispose()
    service = start_service(bundle, sqlite_url)
    client = service.client()
    status, ready = client.call("GET", "/readyz")
    assert status == 503
    assert any("table ml_task_settings is missing" in reason for reason in ready["reasons"])

    migrated(sqlite_url)  # `mixai-db upgrade`: ready at the next refresh
    service.wait_until(lambda: client.call("GET", "/readyz")[0] == 200, what="ready")


def test_an_unknown_policy_in_the_database_is_logged_and_the_bundle_serves(
    guarded_bundle: Path, sqlite_url: str, start_service: Callable[..., Service]
) -> None:
    url = migrated(sqlite_url)
    service = start_service(guarded_bundle, url)
    engine = create_engine(url)
    with engine.begin() as connection:  # an adopted table has no check to stop it
        connection.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
        connection.exec_driver_sql(
            "INSERT INTO ml_task_settings (task, ood_policy, updated_at) "
            "VALUES ('master_reg', 'ignore', CURRENT_TIMESTAMP)"
        )
    engine.dispose()
    service.wait_until(
        lambda: "ml_task_settings master_reg: policy must be one of" in service.log.read_text(),
        what="the row logged",
        timeout=SWITCH_S,
    )
    assert master(service.client(), FAR)["ood_score"] is None  # the bundle's: off
