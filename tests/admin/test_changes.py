"""What an operator changes over HTTP lands in the database and the bundle, each change in the
audit log with who, what, before and after; refused changes change nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select

from admin_support import OPERATOR, AdminServer, admin_server, csrf, login
from mixai_inference.bundle import read_manifest
from mixai_inference.serve.store import read_control
from mixai_ml.db import schema
from project_copy import copy_project, seed_registry

pytestmark = pytest.mark.slow  # each starts mixai-admin (a Kedro session: seconds)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[AdminServer]:
    """The console on a project with master_reg v1 (active) and v2, on each database."""
    project = copy_project(tmp_path / "project")
    seed_registry(project, "master_reg", ["v1", "v2"], "v1", NOW, db_url=db_url)
    with admin_server(project, db_url=db_url) as running:
        yield running


def audit(server: AdminServer, action: str) -> list[dict[str, Any]]:
    table = schema.admin_audit_log
    engine = create_engine(server.db_url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(table).where(table.c.action == action).order_by(table.c.at)
        ).all()
    engine.dispose()
    return [
        {
            **row._mapping,
            "before": json.loads(row.before) if row.before else None,
            "after": json.loads(row.after) if row.after else None,
        }
        for row in rows
    ]


def post(client: httpx.Client, path: str, **form: Any) -> str:
    """POST a change with the session's CSRF token; the message the next page shows."""
    response = client.post(path, data={**form, "csrf_token": csrf(client)})
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"]).text
    return page.split('<p class="flash', 1)[1].split("</p>", 1)[0] if "flash" in page else ""


def registry_states(server: AdminServer) -> dict[str, tuple[str, float]]:
    table = schema.model_registry
    engine = create_engine(server.db_url)
    with engine.connect() as connection:
        rows = connection.execute(select(table.c.version, table.c.status, table.c.rollout_pct))
        states = {version: (status, float(pct)) for version, status, pct in rows}
    engine.dispose()
    return states


def test_a_flag_switch_is_stored_for_the_service_and_audited(server: AdminServer) -> None:
    operator = login(server)
    assert "enable_cpu_ml is now on" in post(
        operator, "/admin/ml/flags", flag="enable_cpu_ml", enabled="true"
    )
    post(operator, "/admin/ml/flags", flag="enable_cpu_ml", enabled="false")
    engine = create_engine(server.db_url)
    with engine.connect() as connection:
        row = connection.execute(select(schema.ml_feature_flags)).one()
    assert (row.flag, row.enabled, row.updated_by) == ("enable_cpu_ml", False, OPERATOR)
    entries = audit(server, "flag.set")
    assert [(e["actor"], e["target"], e["before"], e["after"]) for e in entries] == [
        (OPERATOR, "enable_cpu_ml", None, {"enabled": True}),
        (OPERATOR, "enable_cpu_ml", {"enabled": True}, {"enabled": False}),
    ]
    assert "error" in post(operator, "/admin/ml/flags", flag="enable_gpu", enabled="true")
    assert len(audit(server, "flag.set")) == 2


def task_settings(server: AdminServer) -> list[tuple[str, str | None, str | None]]:
    """The ``ml_task_settings`` rows, and the policies the inference service reads from them."""
    table = schema.ml_task_settings
    engine = create_engine(server.db_url)
    with engine.connect() as connection:
        rows = connection.execute(select(table.c.task, table.c.ood_policy, table.c.updated_by))
        settings = sorted(map(tuple, rows))
        served = read_control(connection).ood_policies
    engine.dispose()
    assert served == {task: policy for task, policy, _ in settings if policy is not None}
    return settings


def test_an_ood_policy_is_stored_for_the_service_and_audited(server: AdminServer) -> None:
    operator = login(server)
    page = operator.get("/admin/ml/models").text
    row = page.split('id="ood-master_reg"', 1)[1].split("</tr>", 1)[0]
    assert '<option value="default" selected>bundle default (flag)</option>' in row
    assert "<td><code>flag</code></td>" in row

    set_policy = "/admin/ml/models/ood"
    assert post(operator, set_policy, task="master_reg", ood_policy="fallback").endswith(
        "out-of-distribution policy of master_reg: bundle default (flag) → fallback; "
        "the service applies it within MIXAI_CONTROL_REFRESH_S"
    )
    assert task_settings(server) == [("master_reg", "fallback", OPERATOR)]
    row = operator.get("/admin/ml/models").text.split('id="ood-master_reg"', 1)[1]
    assert '<option value="fallback" selected>fallback</option>' in row.split("</tr>", 1)[0]

    assert "fallback → flag;" in post(operator, set_policy, task="master_reg", ood_policy="flag")
    assert "flag → bundle default (flag);" in post(
        operator, set_policy, task="master_reg", ood_policy="default"
    )
    assert task_settings(server) == [("master_reg", None, OPERATOR)]  # the bundle's serves
    entries = audit(server, "ood_policy.set")
    assert [(e["actor"], e["target"], e["before"], e["after"]) for e in entries] == [
        (OPERATOR, "master_reg", {"ood_policy": None}, {"ood_policy": "fallback"}),
        (OPERATOR, "master_reg", {"ood_policy": "fallback"}, {"ood_policy": "flag"}),
        (OPERATOR, "master_reg", {"ood_policy": "flag"}, {"ood_policy": None}),
    ]

    # a value the form never offers, or no CSRF token: refused, nothing changes
    post(operator, set_policy, task="align_conf", ood_policy="off")
    before = (task_settings(server), len(audit(server, "ood_policy.set")))
    for form, message in (
        ({"task": "master_reg", "ood_policy": "ignore"}, "unknown out-of-distribution policy"),
        ({"task": "master_reg", "ood_policy": "FLAG"}, "unknown out-of-distribution policy"),
        ({"task": "master_reg"}, "unknown out-of-distribution policy"),
        ({"task": "mastering", "ood_policy": "flag"}, "unknown task 'mastering'"),
        ({"ood_policy": "flag"}, "unknown task"),
    ):
        response = operator.post(set_policy, data={**form, "csrf_token": csrf(operator)})
        assert (response.status_code, message in response.text) == (400, True), response.text
    unprotected = operator.post(set_policy, data={"task": "align_conf", "ood_policy": "flag"})
    assert unprotected.status_code == 403
    assert (task_settings(server), len(audit(server, "ood_policy.set"))) == before
    assert before[0] == [("align_conf", "off", OPERATOR), ("master_reg", None, OPERATOR)]


def test_rollout_promote_and_rollback_use_the_registry_and_rebuild_the_bundle(
    server: AdminServer,
) -> None:
    operator = login(server)
    bundle = server.project / "data" / "06_models" / "bundle"
    message = post(
        operator, "/admin/ml/models", command="rollout", task="master_reg", rollout_pct="30"
    )
    assert "active v1 at 30 %" in message
    assert registry_states(server)["v1"] == ("active", 30.0)
    assert read_manifest(bundle).tasks["master_reg"].models["v1"].rollout_pct == 30.0

    post(
        operator,
        "/admin/ml/models",
        command="promote",
        task="master_reg",
        version="v2",
        rollout_pct="10",
    )
    assert registry_states(server) == {"v1": ("retired", 0.0), "v2": ("active", 10.0)}
    assert read_manifest(bundle).tasks["master_reg"].active_version == "v2"

    post(operator, "/admin/ml/models", command="rollback", task="master_reg")
    assert registry_states(server) == {"v1": ("active", 100.0), "v2": ("retired", 0.0)}

    [rollout] = audit(server, "model.rollout")
    assert rollout["before"] == {"v1": {"status": "active", "rollout_pct": 100.0}}
    assert rollout["after"] == {"v1": {"status": "active", "rollout_pct": 30.0}}
    [promote] = audit(server, "model.promote")
    assert promote["after"] == {
        "v1": {"status": "retired", "rollout_pct": 0.0},
        "v2": {"status": "active", "rollout_pct": 10.0},
    }
    assert len(audit(server, "model.rollback")) == 1

    # refused: nothing changes, nothing is audited, the operator reads why
    before = registry_states(server)
    assert "between 0 and 100" in post(
        operator, "/admin/ml/models", command="rollout", task="master_reg", rollout_pct="150"
    )
    assert "no registered version" in post(
        operator, "/admin/ml/models", command="promote", task="master_reg", version="v9"
    )
    assert "no active model" in post(
        operator, "/admin/ml/models", command="rollout", task="preset_cls", rollout_pct="50"
    )
    assert registry_states(server) == before
    assert len(audit(server, "model.rollout")) == 1


def test_experiments_are_created_started_widened_and_stopped(server: AdminServer) -> None:
    operator = login(server)
    create = {
        "experiment_id": "master-v2",
        "task": "master_reg",
        "variant": ["control", "treatment", ""],
        "serves": ["active", "v2", ""],
        "weight": ["90", "10", "0"],
        "coverage": "0.2",
    }
    assert "created as a draft" in post(operator, "/admin/ml/experiments", **create)
    assert "exists already" in post(operator, "/admin/ml/experiments", **create)
    bad = {**create, "experiment_id": "other", "serves": ["active", "v7", ""]}
    assert "registered for master_reg" in post(operator, "/admin/ml/experiments", **bad)

    change = "/admin/ml/experiments/change"
    post(
        operator,
        change,
        experiment_id="master-v2",
        verb="update",
        coverage="0.2",
        **{"weight:control": "50", "weight:treatment": "50"},
    )
    post(operator, change, experiment_id="master-v2", verb="start")
    assert "cannot change" in post(
        operator,
        change,
        experiment_id="master-v2",
        verb="update",
        coverage="0.5",
        **{"weight:control": "90", "weight:treatment": "10"},
    )
    post(
        operator,
        change,
        experiment_id="master-v2",
        verb="update",
        coverage="0.5",
        **{"weight:control": "50", "weight:treatment": "50"},
    )
    assert "only a draft experiment can start" in post(
        operator, change, experiment_id="master-v2", verb="start"
    )
    post(operator, change, experiment_id="master-v2", verb="stop")

    engine = create_engine(server.db_url)
    with engine.connect() as connection:
        row = connection.execute(select(schema.ab_experiments)).one()
    assert row.status == "stopped"
    assert json.loads(row.variants) == {"control": "active", "treatment": "v2"}
    assert json.loads(row.weights) == {"control": 50.0, "treatment": 50.0}
    assert row.coverage == 0.5
    assert row.started_at is not None
    assert row.stopped_at is not None
    actions = [e["action"] for e in audit(server, "experiment.create")]
    actions += [e["after"]["status"] for e in audit(server, "experiment.start")]
    actions += [e["after"]["coverage"] for e in audit(server, "experiment.update")]
    assert actions == ["experiment.create", "running", 0.2, 0.5]
    [stop] = audit(server, "experiment.stop")
    assert (stop["before"]["status"], stop["after"]["status"]) == ("running", "stopped")


def test_the_audit_log_page_lists_every_change(server: AdminServer) -> None:
    operator = login(server)
    post(operator, "/admin/ml/flags", flag="enable_align_confidence", enabled="false")
    post(operator, "/admin/ml/models", command="rollout", task="master_reg", rollout_pct="40")
    page = operator.get("/admin/ml/audit").text
    for action in ("session.login", "flag.set", "model.rollout"):
        assert action in page
    only = operator.get("/admin/ml/audit", params={"action": "model."}).text
    assert "model.rollout" in only
    assert "flag.set" not in only


@pytest.mark.postgres
def test_the_console_survives_a_database_outage(
    tmp_path: Path, restartable_postgres: Any, pg_database: Callable[[], str]
) -> None:
    """PostgreSQL stopped: pages say the database is unreachable (503), nothing breaks; started
    again: the same session works on."""
    project = copy_project(tmp_path / "project")
    with admin_server(project, db_url=pg_database()) as server:
        operator = login(server)
        post(operator, "/admin/ml/flags", flag="enable_cpu_ml", enabled="true")
        restartable_postgres.stop_server()
        try:
            for path in ("/admin/ml", "/admin/ml/audit"):
                down = operator.get(path)
                assert down.status_code == 503, down.text
                assert "database is unreachable" in down.text
        finally:
            restartable_postgres.start_server()
        assert operator.get("/admin/ml").status_code == 200
        assert "enable_cpu_ml is now off" in post(
            operator, "/admin/ml/flags", flag="enable_cpu_ml", enabled="false"
        )
