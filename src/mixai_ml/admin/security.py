"""Sessions, CSRF tokens, login throttling and secret checks of the console (docs/admin.md).

Sessions live in the console's memory, keyed by a hash of a random token that only the
operator's cookie holds: logging out or restarting the console ends them. Each session has its
own CSRF token, which every form of the console sends back and every state-changing route checks.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


def same_secret(given: str, expected: str) -> bool:
    """Whether two secrets are equal, compared in constant time (case matters)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer <token>`` header (the scheme's case is
    free, RFC 7235), or ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class Session:
    """A logged-in operator."""

    operator: str
    csrf_token: str
    created: float
    last_seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list)
    """Messages (``ok`` or ``error``, text) for the next page."""

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and same_secret(str(given), self.csrf_token)

    def flash(self, kind: str, message: str) -> None:
        self.flashes.append((kind, message))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken


class SessionStore:
    """Sessions by token; one ends after ``idle_s`` without a request or ``max_age_s`` in all.

    Args:
        idle_s: Seconds of inactivity after which the operator logs in again.
        max_age_s: Seconds after which any session ends.
        clock: The time source (seconds), for tests.
    """

    def __init__(
        self, idle_s: float, max_age_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.idle_s, self.max_age_s = idle_s, max_age_s
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, operator: str) -> tuple[str, Session]:
        """A new session: the token for the cookie, and the session."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(operator, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._sessions[_digest(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token`` (its last use updated), or ``None``."""
        if not token:
            return None
        key, now = _digest(token), self._clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now - session.last_seen > self.idle_s or now - session.created > self.max_age_s:
                del self._sessions[key]
                return None
            session.last_seen = now
            return session

    def drop(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(_digest(token), None)


class LoginThrottle:
    """Refuses logins for a key (a client address, an operator name) after too many failures.

    A key with ``max_failures`` failed logins in the last ``window_s`` seconds is refused until
    the oldest of them leaves the window. A successful login clears the keys it used.
    """

    def __init__(
        self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures, self.window_s = max_failures, window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and now - failures[0] >= self.window_s:
            failures.popleft()
        return failures

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until a login may be tried for all of ``keys`` (0: now)."""
        now, wait = self._clock(), 0.0
        with self._lock:
            for key in keys:
                failures = self._recent(key, now)
                if len(failures) >= self.max_failures:
                    wait = max(wait, failures[0] + self.window_s - now)
        return wait

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
