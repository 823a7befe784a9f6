"""Which comparisons an analysis makes (experiment × metric × non-control variant, with both
arms' sums), their caps, and the primary metrics' cumulative daily paths."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mixai_ml.ab.config import CONTROL, AbSettings, MetricSpec
from mixai_ml.ab.effects import SUMS, moment_statistics
from mixai_ml.ab.stats import FloatArray
from mixai_ml.ab.store import AbStatistics

PATH_COLUMNS = (
    "experiment_id",
    "metric",
    "variant",
    "day",
    "n_control",
    "n_variant",
    "abs_effect",
    "abs_ci_low",
    "abs_ci_high",
    "seq_ci_low",
    "seq_ci_high",
    "seq_p_value",
)
"""The columns of the daily paths (cumulative statistics after each day)."""


# --- which comparisons ---------------------------------------------------------------------------

_SPEC_COLUMNS = (
    "metric",
    "source",
    "kind",
    "statistic",
    "role",
    "higher_is_better",
    "mde",
    "margin",
    "margin_relative",
    "quantile",
    "absolute_cap",
)


def _spec_row(spec: MetricSpec) -> dict[str, Any]:
    return {
        "metric": spec.name,
        "source": spec.rows,
        "kind": spec.kind,
        "statistic": spec.statistic,
        "role": spec.role,
        "higher_is_better": spec.higher_is_better,
        "mde": spec.mde,
        "margin": np.nan if spec.margin is None else spec.margin,
        "margin_relative": spec.margin_type == "relative",
        "quantile": np.nan if spec.quantile is None else spec.quantile,
        "absolute_cap": np.nan
        if spec.cap is None or spec.cap.absolute is None
        else spec.cap.absolute,
    }


def comparisons(
    statistics: AbStatistics, settings: AbSettings, variants: pd.DataFrame
) -> pd.DataFrame:
    """One row per experiment × metric × non-control variant, with both arms' sums.

    Configured metrics are analysed where their rows exist; a metric nobody configured is a
    proportion when every user value is 0/1, else a mean. Experiments without ``control`` are
    left out (they are invalid).
    """
    totals = statistics.metric_totals
    present = (
        totals.groupby(["experiment_id", "metric"], sort=True)["n_nonbinary"]
        .sum()
        .rename("nonbinary")
        .reset_index()
        .rename(columns={"metric": "source"})
    )
    configured = pd.DataFrame(
        [_spec_row(spec) for spec in settings.metrics.values()], columns=list(_SPEC_COLUMNS)
    )
    known = present.merge(configured, on="source", how="inner")
    unknown = present[~present["source"].isin(configured["source"])]
    defaults = pd.DataFrame(
        [
            _spec_row(settings.metric_spec(source, all_binary=nonbinary == 0))
            for source, nonbinary in zip(unknown["source"], unknown["nonbinary"], strict=True)
        ],
        columns=list(_SPEC_COLUMNS),
        index=unknown.index,
    )
    unknown = pd.concat([unknown, defaults.drop(columns="source")], axis=1)
    specs = pd.concat([known, unknown], ignore_index=True)
    specs["binary"] = specs["nonbinary"] == 0
    order = {name: i for i, name in enumerate(settings.metrics)}
    specs["order"] = specs["metric"].map(order).fillna(len(order))
    frame = specs.merge(variants[variants["variant"] != CONTROL], on="experiment_id")
    frame = frame[
        frame["experiment_id"].isin(variants.loc[variants["variant"] == CONTROL, "experiment_id"])
    ]
    sums = totals.rename(columns={"metric": "source"})[
        ["experiment_id", "variant", "source", *SUMS]
    ]
    control = sums[sums["variant"] == CONTROL].drop(columns="variant").add_prefix("c_")
    treated = sums.add_prefix("t_")
    frame = frame.merge(
        control,
        left_on=["experiment_id", "source"],
        right_on=["c_experiment_id", "c_source"],
        how="left",
    ).merge(
        treated,
        left_on=["experiment_id", "variant", "source"],
        right_on=["t_experiment_id", "t_variant", "t_source"],
        how="left",
    )
    sum_columns = [f"{arm}{name}" for arm in ("c_", "t_") for name in SUMS]
    frame[sum_columns] = frame[sum_columns].astype(float).fillna(0.0)
    frame["tuning_n"] = frame["experiment_id"].map(settings.tuning_n)
    return (
        frame.drop(
            columns=["c_experiment_id", "c_source", "t_experiment_id", "t_variant", "t_source"]
        )
        .sort_values(["experiment_id", "order", "metric", "variant"], kind="stable")
        .reset_index(drop=True)
    )


def caps(frame: pd.DataFrame, statistics: AbStatistics) -> tuple[FloatArray, FloatArray]:
    """The cap applied to each comparison's values and the share of its users above it."""
    pre = statistics.caps.rename(columns={"metric": "source", "cap": "pre_cap"})
    merged = frame[["experiment_id", "source"]].merge(
        pre[["experiment_id", "source", "pre_cap"]], on=["experiment_id", "source"], how="left"
    )
    capped = frame["kind"].eq("mean").to_numpy()
    cap = np.where(
        capped,
        merged["pre_cap"].fillna(frame["absolute_cap"]).to_numpy(dtype=float),
        np.nan,
    )
    users = frame["c_n"].to_numpy(dtype=float) + frame["t_n"].to_numpy(dtype=float)
    above = frame["c_n_capped"].to_numpy(dtype=float) + frame["t_n_capped"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(np.isfinite(cap), above / users, np.nan)
    return cap, share


# --- paths ---------------------------------------------------------------------------------------


def daily_paths(
    frame: pd.DataFrame, statistics: AbStatistics, settings: AbSettings
) -> pd.DataFrame:
    """Cumulative daily statistics of the primary comparisons (not quantiles: no daily bins)."""
    primary = frame[(frame["role"] == "primary") & (frame["kind"] != "quantile")]
    daily = statistics.metric_daily.rename(columns={"metric": "source"})
    if primary.empty or daily.empty:
        return pd.DataFrame(columns=list(PATH_COLUMNS))
    keys = ["experiment_id", "source", "day"]
    grid = daily.pivot_table(
        index=keys, columns="variant", values=list(SUMS), aggfunc="sum", fill_value=0.0
    )
    cumulative = grid.groupby(level=[0, 1]).cumsum()
    looks = []
    present = set(cumulative.columns.get_level_values(1))
    for variant, rows in primary.groupby("variant", sort=True):
        if not {CONTROL, variant} <= present:
            continue
        arms = pd.concat(
            [
                cumulative.xs(CONTROL, axis=1, level=1).add_prefix("c_"),
                cumulative.xs(variant, axis=1, level=1).add_prefix("t_"),
            ],
            axis=1,
        ).reset_index()
        spec_columns = ["experiment_id", "source", "metric", "kind", "binary", "tuning_n"]
        merged = arms.merge(rows[spec_columns], on=["experiment_id", "source"])
        if merged.empty:
            continue
        stats = moment_statistics(merged, settings)
        looks.append(
            pd.DataFrame(
                {
                    "experiment_id": merged["experiment_id"],
                    "metric": merged["metric"],
                    "variant": variant,
                    "day": merged["day"].astype(str),
                    "n_control": merged["c_n"].astype("int64"),
                    "n_variant": merged["t_n"].astype("int64"),
                    **{name: stats[name] for name in PATH_COLUMNS[6:]},
                }
            )
        )
    if not looks:
        return pd.DataFrame(columns=list(PATH_COLUMNS))
    return (
        pd.concat(looks, ignore_index=True)
        .sort_values(["experiment_id", "metric", "variant", "day"], kind="stable")
        .reset_index(drop=True)
    )
