"""Operator passwords as scrypt hashes (standard library only); never stored in plain text.

A hash is one shell-safe line, ``scrypt:ln=15,r=8,p=1:<salt>:<digest>`` (salt and digest in
URL-safe base64 without padding; ``ln`` is log2 of scrypt's cost ``n``), made by
``mixai-admin hash-password`` and put in the configuration (``MIXAI_ADMIN_PASSWORD_HASH`` or
``conf/local/credentials.yml``, docs/admin.md). RFC 7914 parameters: ``n = 2**15``, ``r = 8``,
``p = 1`` take about 0.1 s and 32 MiB per check, which makes guessing slow.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCHEME = "scrypt"
LOG2_N, BLOCK_SIZE, PARALLELISM = 15, 8, 1
SALT_BYTES, DIGEST_BYTES = 16, 32
_MAX_LOG2_N = 20  # a hash from the configuration may not ask for more than 1 GiB per check


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int, length: int) -> bytes:
    n = 2**log2_n
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=2 * 128 * r * n * p + 2**20,
        dklen=length,
    )


def hash_password(password: str, *, log2_n: int = LOG2_N) -> str:
    """A new hash of ``password`` with a random salt (see the module documentation).

    Raises:
        ValueError: If the password is empty.
    """
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, log2_n, BLOCK_SIZE, PARALLELISM, DIGEST_BYTES)
    params = f"ln={log2_n},r={BLOCK_SIZE},p={PARALLELISM}"
    return f"{SCHEME}:{params}:{_b64(salt)}:{_b64(digest)}"


def check_hash(encoded: str) -> None:
    """Raise :class:`ValueError`, saying what is wrong, unless ``encoded`` is a usable hash."""
    _parse(encoded)


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    parts = encoded.strip().split(":")
    if len(parts) != 4 or parts[0] != SCHEME:
        raise ValueError(
            "not a password hash of the form scrypt:ln=15,r=8,p=1:<salt>:<digest>; "
            "make one with `mixai-admin hash-password` (never configure the password itself)"
        )
    try:
        params = dict(item.split("=", 1) for item in parts[1].split(","))
        log2_n, r, p = int(params["ln"]), int(params["r"]), int(params["p"])
        salt, digest = _unb64(parts[2]), _unb64(parts[3])
    except (KeyError, ValueError) as error:
        raise ValueError(f"malformed password hash ({error}); make a new one") from None
    if not (1 <= log2_n <= _MAX_LOG2_N and r >= 1 and p >= 1 and salt and digest):
        raise ValueError("password hash parameters out of range; make a new one")
    return log2_n, r, p, salt, digest


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the hash (digests compared in constant time).

    Raises:
        ValueError: If ``encoded`` is not a hash this module made.
    """
    log2_n, r, p, salt, digest = _parse(encoded)
    candidate = _scrypt(password, salt, log2_n, r, p, len(digest))
    return hmac.compare_digest(candidate, digest)
