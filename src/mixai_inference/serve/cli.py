"""``mixai-serve``: the inference service (CONTRACTS §9).

::

    mixai-serve --bundle DIR [--host 127.0.0.1] [--port 8080] [--workers 1]

Settings come from the environment (:meth:`Settings.from_env
<mixai_inference.serve.settings.Settings.from_env>`; ``docs/deployment.md``). It refuses to
listen on a non-loopback address without ``MIXAI_SERVICE_TOKEN`` (exit code 2). SIGHUP
re-reads the bundle.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from mixai_inference._version import __version__
from mixai_inference.serve.settings import Settings

EXIT_REFUSED = 2
_BUNDLE_VARIABLE = "MIXAI_SERVE_BUNDLE"  # how the workers learn the command line's bundle


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixai-serve", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--bundle", required=True, help="the model bundle folder")
    parser.add_argument("--host", default=Settings.host, help="address to listen on")
    parser.add_argument("--port", type=int, default=Settings.port)
    parser.add_argument("--workers", type=int, default=1, help="processes (each one a service)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    return parser


def app_from_env() -> object:
    """The ASGI app of one worker (uvicorn's factory): settings from the environment."""
    from mixai_inference.serve.app import create_app
    from mixai_inference.serve.runtime import Runtime

    runtime = Runtime(Settings.from_env(os.environ[_BUNDLE_VARIABLE]))
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: runtime.request_reload())
    return create_app(runtime)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the service until stopped; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(args.bundle, host=args.host, port=args.port)
        settings.check_exposure()
    except ValueError as exc:
        print(f"mixai-serve: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    import uvicorn

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.environ[_BUNDLE_VARIABLE] = str(settings.bundle.resolve())
    uvicorn.run(
        "mixai_inference.serve.cli:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
