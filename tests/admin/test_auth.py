"""Password hashes, sessions, login throttling and secret comparison, with a fake clock."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys

import pytest

from mixai_ml.admin.console import operators_from
from mixai_ml.admin.passwords import check_hash, hash_password, verify_password
from mixai_ml.admin.security import LoginThrottle, SessionStore, bearer_token, same_secret


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_hash_verifies_its_password_only_and_is_salted() -> None:
    encoded = hash_password("s3cret passphrase", log2_n=10)
    assert encoded.startswith("scrypt:ln=10,r=8,p=1:")
    assert verify_password("s3cret passphrase", encoded)
    assert not verify_password("s3cret passphrasE", encoded)
    assert not verify_password("", encoded)
    assert hash_password("s3cret passphrase", log2_n=10) != encoded  # a new salt every time
    # the digest is RFC 7914 scrypt of the password with the stored salt and parameters
    _, _, salt, digest = (unpadded + "=" * (-len(unpadded) % 4) for unpadded in encoded.split(":"))
    expected = hashlib.scrypt(
        b"s3cret passphrase", salt=base64.urlsafe_b64decode(salt), n=1024, r=8, p=1, dklen=32
    )
    assert base64.urlsafe_b64decode(digest) == expected


def test_the_default_cost_is_2_to_the_15() -> None:
    assert hash_password("x").startswith("scrypt:ln=15,r=8,p=1:")


@pytest.mark.parametrize(
    "configured",
    ["hunter2", "scrypt:ln=15:abc", "bcrypt:ln=15,r=8,p=1:abc:def", "scrypt:ln=40,r=8,p=1:YQ:YQ"],
)
def test_a_configured_value_that_is_not_a_hash_is_refused(configured: str) -> None:
    with pytest.raises(ValueError, match="hash"):
        check_hash(configured)
    with pytest.raises(ValueError, match="operator 'admin'"):
        operators_from({}, {"MIXAI_ADMIN_PASSWORD_HASH": configured})


def test_operators_come_from_credentials_and_the_environment() -> None:
    first, second = hash_password("a", log2_n=4), hash_password("b", log2_n=4)
    credentials = {"mixai_admin": {"operators": {"carol": first}}}
    assert operators_from(credentials, {}) == {"carol": first}
    environ = {"MIXAI_ADMIN_PASSWORD_HASH": second, "MIXAI_ADMIN_USER": "dave"}
    assert operators_from(credentials, environ) == {"carol": first, "dave": second}
    assert operators_from({}, {"MIXAI_ADMIN_PASSWORD_HASH": second}) == {"admin": second}
    assert operators_from({"mixai_admin": {"operators": None}}, {}) == {}


def test_hash_password_reads_a_piped_password() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mixai_ml.admin", "hash-password"],
        input="piped secret\n",
        capture_output=True,
        text=True,
        check=True,
    )
    encoded = result.stdout.strip()
    assert verify_password("piped secret", encoded)
    assert "piped secret" not in result.stdout + result.stderr


def test_sessions_end_when_idle_or_old_and_on_logout() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_age_s=300, clock=clock)
    token, session = store.create("alice")
    assert store.get(token) is session
    assert store.get(token + "x") is None
    assert store.get(None) is None
    for _ in range(5):  # active: kept alive by use
        clock.now += 50
        assert store.get(token) is session
    clock.now += 51  # 301 s after creation
    assert store.get(token) is None
    token, _ = store.create("alice")
    clock.now += 61
    assert store.get(token) is None
    token, _ = store.create("bob")
    store.drop(token)
    assert store.get(token) is None


def test_each_session_has_its_own_csrf_token() -> None:
    store = SessionStore(idle_s=60, max_age_s=300)
    _, first = store.create("alice")
    _, second = store.create("alice")
    assert first.csrf_token != second.csrf_token
    assert first.csrf_ok(first.csrf_token)
    assert not first.csrf_ok(second.csrf_token)
    assert not first.csrf_ok("")
    assert not first.csrf_ok(None)


def test_the_throttle_refuses_after_max_failures_until_the_oldest_ages_out() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, window_s=600, clock=clock)
    keys = ["address:10.0.0.1", "operator:alice"]
    for _ in range(3):
        assert throttle.retry_after(keys) == 0
        throttle.failed(keys)
        clock.now += 100  # failures at 1000, 1100, 1200
    assert throttle.retry_after(keys) == pytest.approx(1000 + 600 - 1300)
    assert throttle.retry_after(["operator:alice"]) > 0  # from any address
    assert throttle.retry_after(["address:10.0.0.2", "operator:bob"]) == 0
    clock.now = 1600  # the first failure leaves the window
    assert throttle.retry_after(keys) == 0
    throttle.failed(keys)
    assert throttle.retry_after(keys) > 0
    throttle.succeeded(keys)
    assert throttle.retry_after(keys) == 0


def test_bearer_tokens_and_secret_comparison() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer abc") == "abc"  # the scheme's case is free (RFC 7235)
    assert bearer_token("Bearer") is None
    assert bearer_token("Basic abc") is None
    assert bearer_token(None) is None
    assert same_secret("Abc", "Abc")
    assert not same_secret("abc", "Abc")  # the secret's case is not
    assert not same_secret("Abc ", "Abc")
    assert same_secret("ünï", "ünï")
