"""The shipped assignment vectors: generated here, checked against two implementations.

``src/mixai_inference/assignment_vectors.json`` is what the TypeScript app tests its
port of ``assign_variant`` against. Regenerate it (only when the cases change, never
the algorithm) with::

    .venv/bin/python tests/inference/test_assignment_vectors.py --write
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import re
import shutil
import struct
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from mixai_inference.routing import assign_variant, hash_unit

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "src" / "mixai_inference" / "assignment_vectors.json"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"

USERS = [
    "user-1",
    "user-2",
    "u_000042",
    "3f2b8c1e-9d4a-4e7b-8f00-1a2b3c4d5e6f",
    "alice@example.com",
    "ユーザー42",
    "Zoë",
    "😀🎵",
    "",
    " spaced id ",
    "\ud800lone-surrogate",
    "x" * 64,
]
EXPERIMENTS = [
    ("exp-master-v2", None, {"control": 50, "treatment": 50}),
    ("exp-preset", None, {"a": 1, "b": 1, "c": 1}),
    ("exp-uneven", None, {"control": 0.1, "treatment": 0.9}),
    ("exp-three", "salt-2025", {"control": 70, "t1": 20, "t2": 10}),
    ("exp-zero", None, {"control": 1, "treatment": 0}),
    ("exp-zero-middle", None, {"a": 1, "b": 0, "c": 2}),
    ("exp-float", None, {"control": 33.3, "treatment": 66.7}),
    ("rollout:master_reg", None, {"20250110-a1b2": 1.0}),
]
COVERAGES = [0.0, 0.3, 1.0]


def generate_cases() -> list[dict[str, Any]]:
    """Every user x experiment x coverage, plus coverages near the edges for a few."""
    grid = list(itertools.product(USERS, EXPERIMENTS, COVERAGES))
    extra = list(itertools.product(USERS[:4], EXPERIMENTS[:2], [0.05, 0.5, 0.999]))
    cases = []
    for user_id, (experiment_id, salt, weights), coverage in grid + extra:
        key = salt or experiment_id
        cases.append(
            {
                "user_id": user_id,
                "experiment_id": experiment_id,
                "salt": salt,
                "weights": weights,
                "coverage": coverage,
                "unit_coverage": hash_unit(key, "coverage", user_id),
                "unit_variant": hash_unit(key, "variant", user_id),
                "expected": assign_variant(user_id, experiment_id, weights, coverage, salt=salt),
            }
        )
    return cases


def render() -> str:
    """The file's text: a small header, then one case per line (ASCII-escaped JSON)."""
    description = (
        "Test vectors of mixai_inference.routing.assign_variant: for each case the variant "
        "(or null outside the coverage) that every implementation must return. unit_* are "
        "the two hash draws, to debug a port. Algorithm: docs/deployment.md."
    )
    cases = ",\n".join("  " + json.dumps(case) for case in generate_cases())
    return (
        f'{{\n "description": {json.dumps(description)},\n "format_version": 1,\n'
        f' "cases": [\n{cases}\n ]\n}}\n'
    )


def independent_assign(case: dict[str, Any]) -> str | None:
    """The documented algorithm, written again without the package's code."""
    key = case["salt"] if case["salt"] is not None else case["experiment_id"]

    def unit(kind: str) -> float:
        text = f"{key}:{kind}:{case['user_id']}"
        data = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()
        return struct.unpack(">I", hashlib.sha256(data).digest()[:4])[0] / 4294967296.0

    if not unit("coverage") < case["coverage"]:
        return None
    names = sorted(case["weights"])
    total = 0.0
    for name in names:
        total += float(case["weights"][name])
    thresholds, running = [], 0.0
    for name in names:
        running += float(case["weights"][name])
        thresholds.append(running / total)
    index = bisect.bisect_right(thresholds, unit("variant"))
    if index < len(names):
        return names[index]
    return [name for name in names if case["weights"][name] > 0][-1]


def load_cases() -> list[dict[str, Any]]:
    text = resources.files("mixai_inference").joinpath("assignment_vectors.json").read_text()
    return json.loads(text)["cases"]


def test_file_is_what_the_generator_writes() -> None:
    assert VECTORS.read_text(encoding="utf-8") == render()


def test_cases_cover_what_the_app_needs() -> None:
    cases = load_cases()
    assert len(cases) >= 200
    assert {c["coverage"] for c in cases} >= {0.0, 0.3, 1.0}
    assert any(len(c["weights"]) == 3 for c in cases)
    assert any(0 in c["weights"].values() for c in cases)
    assert any(not c["user_id"].isascii() for c in cases)
    assert any(c["salt"] for c in cases)
    expected = [c["expected"] for c in cases]
    assert None in expected
    assert len(set(expected) - {None}) >= 6


def test_both_implementations_agree_with_the_file() -> None:
    mismatches = []
    for case in load_cases():
        got = assign_variant(
            case["user_id"],
            case["experiment_id"],
            case["weights"],
            case["coverage"],
            salt=case["salt"],
        )
        again = independent_assign(case)
        key = case["salt"] or case["experiment_id"]
        unit = hash_unit(key, "coverage", case["user_id"])
        if (got, again, unit) != (case["expected"], case["expected"], case["unit_coverage"]):
            mismatches.append((case, got, again, unit))
    assert mismatches == []


def test_zero_weight_variants_are_never_chosen() -> None:
    for case in load_cases():
        if case["expected"] is not None:
            assert case["weights"][case["expected"]] > 0


def typescript_sketch_as_javascript() -> str:
    """The ``ts`` block of docs/deployment.md with its type annotations removed."""
    (code,) = re.findall(r"```ts\n(.*?)```", DEPLOYMENT_DOC.read_text(encoding="utf-8"), re.S)
    code = code.replace(
        'import { createHash } from "node:crypto";',
        'const { createHash } = require("node:crypto");',
    )
    code = code.replace("export function", "function")
    return re.sub(
        r":\s*(?:string|number|Record<string, number>)(?:\s*\|\s*null)?(?=\s*[,)={])", "", code
    )


def test_the_documented_typescript_agrees_with_the_vectors(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    harness = """
const cases = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8")).cases;
const wrong = cases.filter((c) =>
  assignVariant(c.user_id, c.experiment_id, c.weights, c.coverage, c.salt) !== c.expected);
console.log(JSON.stringify({ n: cases.length, wrong: wrong.length }));
"""
    script = tmp_path / "assign.js"
    script.write_text(typescript_sketch_as_javascript() + harness, encoding="utf-8")
    done = subprocess.run(
        [node, str(script), str(VECTORS)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"n": len(load_cases()), "wrong": 0}


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: test_assignment_vectors.py --write")
    VECTORS.write_text(render(), encoding="utf-8")
    print(f"wrote {len(generate_cases())} cases to {VECTORS}")
