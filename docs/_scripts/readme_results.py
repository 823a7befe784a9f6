"""Rewrite the README's results table from the demo's evaluation_metrics.json (``make demo``).

Usage: ``.venv/bin/python docs/_scripts/readme_results.py [evaluation_metrics.json]``
(default: data/08_reporting/evaluation_metrics.json of this checkout).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mixai_ml.evaluation.report import with_results_table

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> None:
    source = Path(argv[0]) if argv else ROOT / "data" / "08_reporting" / "evaluation_metrics.json"
    readme = ROOT / "README.md"
    metrics = json.loads(source.read_text(encoding="utf-8"))
    readme.write_text(with_results_table(readme.read_text(encoding="utf-8"), metrics), "utf-8")
    print(f"README.md: results table from {source}")


if __name__ == "__main__":
    main(sys.argv[1:])
