"""``mixai-admin``: serve the operator's console, or make an operator's password hash.

Examples::

    mixai-admin hash-password                 # prints scrypt:ln=15,r=8,p=1:...
    export MIXAI_ADMIN_PASSWORD_HASH='scrypt:ln=15,...'  CRON_SECRET=...
    mixai-admin [--host 127.0.0.1] [--port 8000] [--project DIR]

The console works on the Kedro project it is started in (or ``--project``): its database
(``MIXAI_DB_URL``), its bundle and its configuration. Outside loopback the session cookie is
``Secure``: serve it behind HTTPS (docs/admin.md).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mixai_ml.admin.passwords import hash_password
from mixai_ml.project import find_project

EXIT_REFUSED = 2
logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixai-admin", description=__doc__.split("\n")[0].replace("``", "")
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--project", type=Path, default=None, help="the project folder (default: where you are)"
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser(
        "hash-password",
        help="read a password (twice on a terminal, one line from a pipe) and print its hash",
    )
    return parser


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise ValueError("the two passwords differ")
    return first


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "hash-password":
        try:
            print(hash_password(_read_password()))
        except ValueError as error:
            print(f"mixai-admin: {error}", file=sys.stderr)
            return EXIT_REFUSED
        return 0
    project = find_project(args.project, "mixai-admin")
    if project is None:
        return EXIT_REFUSED
    import uvicorn

    from mixai_inference.serve.settings import is_loopback
    from mixai_ml.admin.app import ROOT, create_app
    from mixai_ml.admin.console import Console

    try:
        console = Console(project, secure_cookies=not is_loopback(args.host))
    except ValueError as error:
        print(f"mixai-admin: {error}", file=sys.stderr)
        return EXIT_REFUSED
    if not console.operators:
        logger.warning("no operator configured: nobody can log in (see docs/admin.md)")
    if not is_loopback(args.host):
        logger.warning(
            "listening on %s: put HTTPS in front (the session cookie is Secure)", args.host
        )
    print(f"mixai-admin: http://{args.host}:{args.port}{ROOT} on {project}", flush=True)
    uvicorn.run(create_app(console), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
