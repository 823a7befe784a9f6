"""assign_variant: determinism, the documented properties, and the split it produces."""

from __future__ import annotations

import hashlib
import math

import pytest

from mixai_inference.routing import assign_variant, hash_unit

USERS = [f"user-{i}" for i in range(20_000)]


def test_hash_unit_is_the_first_four_digest_bytes_over_two_to_the_32() -> None:
    digest = hashlib.sha256(b"exp:coverage:user-1").digest()
    expected = (digest[0] << 24 | digest[1] << 16 | digest[2] << 8 | digest[3]) / 4294967296
    assert hash_unit("exp", "coverage", "user-1") == expected
    assert 0.0 <= expected < 1.0


def test_lone_surrogates_hash_as_the_replacement_character() -> None:
    # what JavaScript's UTF-8 encoder (and so the web app) does with a lone surrogate
    assert hash_unit("e", "variant", "a\ud800b") == hash_unit("e", "variant", "a\ufffdb")


def test_assignment_is_deterministic_and_independent_of_weight_order() -> None:
    first = [assign_variant(u, "exp", {"control": 1, "treatment": 1}) for u in USERS[:500]]
    again = [assign_variant(u, "exp", {"treatment": 1, "control": 1}) for u in USERS[:500]]
    assert first == again


def test_split_follows_uneven_weights_of_three_variants() -> None:
    weights = {"control": 70, "t1": 20, "t2": 10}
    counts = dict.fromkeys(weights, 0)
    for user in USERS:
        counts[assign_variant(user, "exp-three", weights)] += 1  # type: ignore[index]
    n = len(USERS)
    for name, weight in weights.items():
        p = weight / 100
        # binomial standard deviation: 4 sigma keeps this test stable yet meaningful
        assert abs(counts[name] - n * p) < 4 * math.sqrt(n * p * (1 - p)), counts


def test_coverage_share_and_zero_and_full_coverage() -> None:
    inside = sum(assign_variant(u, "exp", {"a": 1}, coverage=0.3) is not None for u in USERS)
    n = len(USERS)
    assert abs(inside - 0.3 * n) < 4 * math.sqrt(n * 0.21)
    assert all(assign_variant(u, "exp", {"a": 1}, coverage=0.0) is None for u in USERS[:300])
    assert all(assign_variant(u, "exp", {"a": 1}, coverage=1.0) == "a" for u in USERS[:300])


def test_users_keep_their_variant_when_coverage_rises() -> None:
    weights = {"control": 50, "treatment": 50}
    at_10 = {u: assign_variant(u, "exp", weights, coverage=0.1) for u in USERS[:5000]}
    at_60 = {u: assign_variant(u, "exp", weights, coverage=0.6) for u in USERS[:5000]}
    kept = [u for u, v in at_10.items() if v is not None]
    assert kept
    assert all(at_60[u] == at_10[u] for u in kept)
    assert sum(v is not None for v in at_60.values()) > 4 * len(kept)


def test_zero_weight_variants_are_never_assigned() -> None:
    seen = {assign_variant(u, "exp", {"a": 0, "b": 1, "c": 0}) for u in USERS[:2000]}
    assert seen == {"b"}


def test_a_new_salt_reshuffles_users() -> None:
    weights = {"control": 1, "treatment": 1}
    same = sum(
        assign_variant(u, "exp", weights) == assign_variant(u, "exp", weights, salt="exp-v2")
        for u in USERS[:4000]
    )
    assert abs(same - 2000) < 4 * math.sqrt(4000 * 0.25)


@pytest.mark.parametrize(
    ("weights", "coverage"),
    [
        ({}, 1.0),
        ({"a": 0, "b": 0}, 1.0),
        ({"a": -1, "b": 2}, 1.0),
        ({"a": math.nan}, 1.0),
        ({"a": 1}, 1.5),
        ({"a": 1}, -0.1),
        ({"a": 1}, math.nan),
    ],
)
def test_invalid_weights_or_coverage_raise(weights: dict[str, float], coverage: float) -> None:
    with pytest.raises(ValueError, match=r"weights|coverage"):
        assign_variant("u", "exp", weights, coverage)
