"""``mixai-registry``: list, promote, roll back and set the rollout of models; rebuilds the bundle.

Examples::

    mixai-registry list
    mixai-registry promote master_reg 20261125170312-3fa9c1d2 [--rollout 10]
    mixai-registry rollout master_reg 50
    mixai-registry rollback master_reg

It works on the project it is run in (the folder, or a parent of it, holding the Kedro
``pyproject.toml``; ``--project`` names another): every change is written to that
project's ``model_registry`` (``MIXAI_DB_URL``) and its bundle (the catalog's
``model_bundle``) is rebuilt atomically from its model store with the database's flags
and running experiments (``ml_feature_flags``, ``ab_experiments``), as ``kedro run``
would. A running ``mixai-serve`` reads the registry within its refresh interval and
reloads the bundle when its manifest changes: no restart.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from mixai_inference.tasks import task_names
from mixai_ml.export.changes import apply_change
from mixai_ml.project import find_project

EXIT_REFUSED = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixai-registry", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--project", type=Path, default=None, help="the project folder (default: where you are)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="show the registry")
    promote = commands.add_parser("promote", help="make a version the active model")
    promote.add_argument("task", choices=task_names())
    promote.add_argument("version")
    promote.add_argument(
        "--rollout",
        dest="rollout_pct",
        type=float,
        default=100.0,
        help="percent of users (0-100)",
    )
    rollout = commands.add_parser("rollout", help="set the active model's share of users")
    rollout.add_argument("task", choices=task_names())
    rollout.add_argument("rollout_pct", metavar="percent", type=float)
    rollback = commands.add_parser("rollback", help="re-activate the previous active version")
    rollback.add_argument("task", choices=task_names())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    project = find_project(args.project, "mixai-registry")
    if project is None:
        return EXIT_REFUSED
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        context = cast(KedroSession, session).load_context()
        if args.command == "list":
            current = context.catalog.load("model_registry")
            columns = ["task", "version", "status", "rollout_pct", "promoted_at"]
            print(current[columns].sort_values(["task", "version"]).to_string(index=False))
            return 0
        try:
            change = apply_change(
                context,
                args.command,
                args.task,
                datetime.now(UTC),
                version=getattr(args, "version", None),
                rollout_pct=getattr(args, "rollout_pct", None),
            )
        except (ValueError, LookupError, FileNotFoundError) as error:
            print(f"mixai-registry: {error}", file=sys.stderr)
            return EXIT_REFUSED
    manifest = change.manifest
    active = manifest.tasks[args.task].active
    state = f"{active.version} at {active.rollout_pct:g}%" if active else "none (rules)"
    print(f"{args.task}: active {state}; bundle of {project} rebuilt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
