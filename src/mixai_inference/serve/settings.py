"""The service's settings: the command line's, then environment variables (docs/deployment.md)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DB_URL = "sqlite:///data/mixai.db"
DEFAULT_JOURNAL_DIR = "data/01_raw/journals"
"""Relative to the working folder: in the project, where ``kedro run --pipelines=ingest``
looks by default (the catalog's ``service_journals``)."""


@dataclass(frozen=True)
class Settings:
    """Everything the service reads at start; see :meth:`from_env` for the variables."""

    bundle: Path
    host: str = "127.0.0.1"
    port: int = 8080
    db_url: str = DEFAULT_DB_URL
    token: str | None = None
    audio_root: Path | None = None
    journal_dir: Path = Path(DEFAULT_JOURNAL_DIR)
    control_refresh_s: float = 15.0
    bundle_poll_s: float = 1.0
    max_body_bytes: int = 1 << 20
    max_upload_bytes: int = 64 << 20
    audio_concurrency: int = 2
    audio_timeout_s: float = 60.0
    queue_max: int = 20_000

    @classmethod
    def from_env(
        cls,
        bundle: str | Path,
        *,
        host: str | None = None,
        port: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Settings from ``environ`` (default :data:`os.environ`):

        ``MIXAI_DB_URL``, ``MIXAI_SERVICE_TOKEN``, ``MIXAI_AUDIO_ROOT``,
        ``MIXAI_JOURNAL_DIR``, ``MIXAI_CONTROL_REFRESH_S``, ``MIXAI_BUNDLE_POLL_S``,
        ``MIXAI_MAX_BODY_BYTES``, ``MIXAI_MAX_UPLOAD_BYTES``, ``MIXAI_AUDIO_CONCURRENCY``,
        ``MIXAI_AUDIO_TIMEOUT_S``, ``MIXAI_QUEUE_MAX``.

        Raises:
            ValueError: On a value that is not a positive number where one is expected.
        """
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def number(name: str, default: float, kind: type = float) -> float:
            raw = text(name)
            if raw is None:
                return default
            what = "a whole number" if kind is int else "a number"
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(
                    f"{name}={raw!r} is not {what}; set it to {what} above 0, or unset it for "
                    f"the default {default}"
                ) from None
            if not value > 0:
                raise ValueError(
                    f"{name} must be positive, got {raw}; unset it for the default {default}"
                )
            return value

        root = text("MIXAI_AUDIO_ROOT")
        return cls(
            bundle=Path(bundle),
            host=cls.host if host is None else host,
            port=cls.port if port is None else port,
            db_url=text("MIXAI_DB_URL") or DEFAULT_DB_URL,
            token=text("MIXAI_SERVICE_TOKEN"),
            audio_root=Path(root) if root else None,
            journal_dir=Path(text("MIXAI_JOURNAL_DIR") or DEFAULT_JOURNAL_DIR),
            control_refresh_s=number("MIXAI_CONTROL_REFRESH_S", cls.control_refresh_s),
            bundle_poll_s=number("MIXAI_BUNDLE_POLL_S", cls.bundle_poll_s),
            max_body_bytes=int(number("MIXAI_MAX_BODY_BYTES", cls.max_body_bytes, int)),
            max_upload_bytes=int(number("MIXAI_MAX_UPLOAD_BYTES", cls.max_upload_bytes, int)),
            audio_concurrency=int(number("MIXAI_AUDIO_CONCURRENCY", cls.audio_concurrency, int)),
            audio_timeout_s=number("MIXAI_AUDIO_TIMEOUT_S", cls.audio_timeout_s),
            queue_max=int(number("MIXAI_QUEUE_MAX", cls.queue_max, int)),
        )

    def check_exposure(self) -> None:
        """Refuse a non-loopback address without a token.

        Raises:
            ValueError: If ``host`` is not loopback and no ``MIXAI_SERVICE_TOKEN`` is set.
        """
        if self.token is None and not is_loopback(self.host):
            raise ValueError(
                f"refusing to listen on {self.host} without MIXAI_SERVICE_TOKEN: anyone who "
                "can reach it could call the models; set the token, or listen on 127.0.0.1"
            )


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, ``127.x``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False
