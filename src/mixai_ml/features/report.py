"""Summary and Markdown report of a features run."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mixai_inference import FEATURE_NAMES, FEATURE_SCHEMA_VERSION


def summary(
    *, n_jobs: int, n_todo: int, features: pd.DataFrame, failures: pd.DataFrame, seconds: float
) -> dict[str, Any]:
    """Counts of a run: jobs seen, extracted, failed (per stage and error class), time."""
    by_class = failures.groupby(["stage", "error_class"]).size() if len(failures) else pd.Series()
    return {
        "schema_version": FEATURE_SCHEMA_VERSION,
        "n_features": len(FEATURE_NAMES),
        "jobs": n_jobs,
        "to_extract": n_todo,
        "extracted": len(features),
        "failed_jobs": int(failures["job_id"].nunique()) if len(failures) else 0,
        "failures": {f"{stage}/{error}": int(count) for (stage, error), count in by_class.items()},
        "seconds": round(seconds, 2),
        "jobs_per_second": round(len(features) / seconds, 2) if seconds > 0 else None,
    }


def markdown(run: dict[str, Any], failures: pd.DataFrame) -> str:
    """The features report: what ran, what failed and why."""
    lines = [
        "# Features report",
        "",
        f"Feature schema `{run['schema_version']}`, {run['n_features']} track features per job.",
        "",
        f"- jobs in the database: {run['jobs']}",
        f"- jobs needing extraction (consenting users, no features yet): {run['to_extract']}",
        f"- extracted: {run['extracted']} in {run['seconds']} s ({run['jobs_per_second']} jobs/s)",
        f"- jobs with a failure: {run['failed_jobs']}",
        "",
    ]
    if run["failures"]:
        lines += ["| stage / error | jobs |", "|---|---|"]
        lines += [f"| {name} | {count} |" for name, count in sorted(run["failures"].items())]
        lines += ["", "Latest failures (all are in the `feature_failures` table):", ""]
        latest = failures.sort_values("failed_at").tail(20)
        lines += [
            f"- `{row.job_id}` {row.stage}: {row.error_class}: {row.message}"
            for row in latest.itertuples()
        ]
    else:
        lines.append("No failures.")
    return "\n".join(lines) + "\n"
