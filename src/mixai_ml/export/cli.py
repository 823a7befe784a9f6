"""``mixai-registry``: list, promote, roll back and set the rollout of models; rebuilds the bundle.

Examples::

    mixai-registry list
    mixai-registry promote master_reg 20261125170312-3fa9c1d2 [--rollout 10]
    mixai-registry rollout master_reg 50
    mixai-registry rollback master_reg

Every change is written to ``model_registry`` (``MIXAI_DB_URL``) and the bundle in
``data/06_models/bundle`` is rebuilt atomically with the export configuration
(``conf/*/parameters_export.yml``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from kedro.config import OmegaConfigLoader

from mixai_inference.bundle import write_bundle
from mixai_inference.tasks import TASKS
from mixai_ml.datasets import AppTableDataset
from mixai_ml.export import registry
from mixai_ml.paths import resolve
from mixai_ml.settings import CUSTOM_RESOLVERS

BUNDLE_DIR = "data/06_models/bundle"


def export_parameters() -> dict[str, Any]:
    """``params:export`` as ``kedro run`` sees it (base + local)."""
    loader = OmegaConfigLoader(
        conf_source=str(resolve("conf")),
        base_env="base",
        default_run_env="local",
        custom_resolvers=CUSTOM_RESOLVERS,
    )
    return dict(loader["parameters"]["export"])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixai-registry", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="show the registry")
    promote = commands.add_parser("promote", help="make a version the active model")
    promote.add_argument("task", choices=TASKS)
    promote.add_argument("version")
    promote.add_argument("--rollout", type=float, default=100.0, help="percent of users (0-100)")
    rollout = commands.add_parser("rollout", help="set the active model's share of users")
    rollout.add_argument("task", choices=TASKS)
    rollout.add_argument("percent", type=float)
    rollback = commands.add_parser("rollback", help="re-activate the previous active version")
    rollback.add_argument("task", choices=TASKS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    table = AppTableDataset(
        table_name="model_registry", credentials={"con": None}, write_mode="upsert"
    )
    current = table.load()
    if args.command == "list":
        columns = ["task", "version", "status", "rollout_pct", "promoted_at"]
        print(current[columns].sort_values(["task", "version"]).to_string(index=False))
        return 0
    now = datetime.now(UTC)
    try:
        if args.command == "promote":
            changed = registry.promote(current, args.task, args.version, now, args.rollout)
        elif args.command == "rollout":
            changed = registry.set_rollout(current, args.task, args.percent)
        else:
            changed = registry.rollback(current, args.task, now)
        params = export_parameters()
        manifest, files = registry.build_manifest(
            changed, params["flags"], params.get("experiments", {}), now
        )
        registry.verify_store(files, manifest)
    except (ValueError, LookupError, FileNotFoundError) as error:
        print(f"mixai-registry: {error}", file=sys.stderr)
        return 2
    table.save(changed)
    write_bundle(resolve(BUNDLE_DIR), manifest, files)
    active = manifest.tasks[args.task].active
    state = f"{active.version} at {active.rollout_pct:g}%" if active else "none (rules)"
    print(f"{args.task}: active {state}; bundle rebuilt at {resolve(BUNDLE_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
