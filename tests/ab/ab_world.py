"""Simulated experiments with known truth, written to a test database; the A/B catalog entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.store import AbStatistics, refresh_statistics
from mixai_ml.datasets import AppTableDataset
from mixai_ml.db import get_engine

PROJECT = Path(__file__).resolve().parents[2]
START = pd.Timestamp("2026-03-01", tz="UTC")


def catalog_config() -> dict[str, Any]:
    """The shared catalog and the ``ab_analysis`` one, as written in ``conf/base``."""
    config: dict[str, Any] = {}
    for name in ("catalog.yml", "catalog_ab_analysis.yml"):
        config.update(yaml.safe_load((PROJECT / "conf" / "base" / name).read_text()))
    return config


def ab_parameters() -> dict[str, Any]:
    text = (PROJECT / "conf" / "base" / "parameters_ab_analysis.yml").read_text()
    return dict(yaml.safe_load(text)["ab_analysis"])


def save(url: str, assignments: pd.DataFrame, metrics: pd.DataFrame, append: bool = False) -> None:
    """Write the raw rows (``append``: add to the tables, as the application does)."""
    mode = "append" if append else "replace_rows"
    for table, frame in (("ab_test_assignments", assignments), ("ab_test_metrics", metrics)):
        AppTableDataset(table_name=table, credentials={"con": url}, write_mode=mode).save(frame)


def refresh(url: str, params: dict[str, Any], now: pd.Timestamp) -> AbStatistics:
    """:func:`refresh_statistics` on ``url`` as of ``now``."""
    return refresh_statistics(get_engine(url), AbSettings.from_params(params), now.to_pydatetime())


def simulate_experiment(
    rng: np.random.Generator,
    experiment_id: str,
    n_users: int,
    *,
    weights: dict[str, float] | None = None,
    accept_rate: dict[str, float] | None = None,
    latency_shift: dict[str, float] | None = None,
    error_rate: dict[str, float] | None = None,
    days: int = 10,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw assignment and metric rows of one experiment with known effects.

    Metrics: ``accepted`` (0/1, one row per user), ``param_mae`` (1-3 rows per user, the user's
    value is their mean), ``latency_ms`` with ``latency_ms__pre`` (correlated, ρ ≈ 0.8, missing
    for ~10 % of users) and ``error`` (0/1). Effects are per variant; missing ones are zero.
    """
    weights = weights or {"control": 1.0, "treatment": 1.0}
    names = sorted(weights)
    share = np.array([weights[v] for v in names]) / sum(weights.values())
    variant = np.array(names)[rng.choice(len(names), n_users, p=share)]
    users = np.array([f"{experiment_id}-u{i:06d}" for i in range(n_users)])
    assigned_at = START + pd.to_timedelta(rng.integers(0, days * 86_400, n_users), unit="s")
    assignments = pd.DataFrame(
        {
            "experiment_id": experiment_id,
            "user_id": users,
            "variant": variant,
            "assigned_at": assigned_at,
        }
    )

    def per_variant(effects: dict[str, float] | None, default: float) -> np.ndarray:
        effects = effects or {}
        return np.array([effects.get(v, default) for v in variant])

    pre = rng.normal(120.0, 25.0, n_users)
    latency = 0.8 * pre + rng.normal(25.0, 15.0, n_users) + per_variant(latency_shift, 0.0)
    frames = [
        pd.DataFrame(
            {
                "user_id": users,
                "metric": "accepted",
                "value": (rng.random(n_users) < per_variant(accept_rate, 0.3)).astype(float),
            }
        ),
        pd.DataFrame({"user_id": users, "metric": "latency_ms", "value": latency}),
        pd.DataFrame(
            {
                "user_id": users,
                "metric": "error",
                "value": (rng.random(n_users) < per_variant(error_rate, 0.02)).astype(float),
            }
        ),
    ]
    has_pre = rng.random(n_users) > 0.1
    frames.append(
        pd.DataFrame(
            {"user_id": users[has_pre], "metric": "latency_ms__pre", "value": pre[has_pre]}
        )
    )
    repeats = rng.integers(1, 4, n_users)
    frames.append(
        pd.DataFrame(
            {
                "user_id": np.repeat(users, repeats),
                "metric": "param_mae",
                "value": rng.gamma(2.0, 1.0, repeats.sum()),
            }
        )
    )
    metrics = pd.concat(frames, ignore_index=True)
    offsets = assignments.set_index("user_id")["assigned_at"]
    metrics["recorded_at"] = metrics["user_id"].map(offsets) + pd.to_timedelta(
        rng.integers(60, 3600, len(metrics)), unit="s"
    )
    metrics.insert(0, "experiment_id", experiment_id)
    return assignments, metrics
