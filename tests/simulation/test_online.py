"""Online logs: A/B experiments whose statistics recover the true effects; serving metrics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from simulation_params import demo_params

from mixai_inference import assign_variant
from mixai_inference.tasks import MASTER_PARAM_RANGES, PRESETS, task_spec
from mixai_ml.simulation.config import WorldConfig
from mixai_ml.simulation.online import AB_METRICS, ab_experiments, model_metrics


@pytest.fixture(scope="module")
def experiments() -> tuple[WorldConfig, pd.DataFrame, pd.DataFrame, dict]:
    config = WorldConfig.from_params(demo_params())
    assignments, metrics, truth = ab_experiments(
        config.experiments, config.ab_baseline, config.ab_users, config.seed, config.world_end
    )
    return config, assignments, metrics, truth


def _user_means(
    assignments: pd.DataFrame, metrics: pd.DataFrame, experiment: str, metric: str
) -> pd.DataFrame:
    rows = metrics[(metrics["experiment_id"] == experiment) & (metrics["metric"] == metric)]
    means = rows.groupby("user_id")["value"].mean().rename("value").reset_index()
    return means.merge(assignments[assignments["experiment_id"] == experiment], on="user_id")


def test_assignments_are_the_routing_functions(experiments: tuple) -> None:
    config, assignments, _, truth = experiments
    for experiment in config.experiments:
        rows = assignments[assignments["experiment_id"] == experiment["experiment_id"]]
        assert len(rows) == config.ab_users * experiment["coverage"]
        sample = rows.sample(200, random_state=0)
        for row in sample.itertuples():
            expected = assign_variant(
                row.user_id, row.experiment_id, experiment["weights"], experiment["coverage"]
            )
            assert row.variant == expected
        counts = rows["variant"].value_counts().to_dict()
        assert counts == truth[experiment["experiment_id"]]["users_per_variant"]


@pytest.mark.parametrize("metric", AB_METRICS)
def test_observed_differences_match_the_true_effects(experiments: tuple, metric: str) -> None:
    config, assignments, metrics, truth = experiments
    for experiment in config.experiments:
        name = experiment["experiment_id"]
        means = _user_means(assignments, metrics, name, metric)
        control = means.loc[means["variant"] == "control", "value"]
        treated = means.loc[means["variant"] == "treatment", "value"]
        observed = treated.mean() - control.mean()
        standard_error = np.sqrt(control.var() / len(control) + treated.var() / len(treated))
        true = truth[name]["true_effects"]["treatment"][metric]
        assert abs(observed - true["abs"]) < 4.0 * standard_error, (name, metric)
        lift = experiment["lift"].get("treatment", {}).get(metric, 0.0)
        assert true["rel"] == pytest.approx(lift, abs=1e-3)  # up to probabilities capped at 0.999


def test_the_effect_experiment_is_detectable_and_the_aa_is_not(experiments: tuple) -> None:
    config, _, _, truth = experiments
    effect, aa = (experiment["experiment_id"] for experiment in config.experiments)
    assert truth[effect]["true_effects"]["treatment"]["accepted"]["abs"] > 0.02
    assert all(v["abs"] == 0.0 for v in truth[aa]["true_effects"]["treatment"].values())


@pytest.mark.parametrize("metric", ["accepted", "param_mae"])
def test_pre_exposure_values_correlate_with_the_outcome(experiments: tuple, metric: str) -> None:
    config, assignments, metrics, _ = experiments
    name = config.experiments[0]["experiment_id"]
    outcome = _user_means(assignments, metrics, name, metric).set_index("user_id")["value"]
    pre = _user_means(assignments, metrics, name, f"{metric}__pre").set_index("user_id")["value"]
    assert outcome.corr(pre.loc[outcome.index]) > 0.3
    recorded = metrics[(metrics["experiment_id"] == name)].merge(
        assignments[assignments["experiment_id"] == name], on=["experiment_id", "user_id"]
    )
    is_pre = recorded["metric"].str.endswith("__pre")
    assert (recorded.loc[is_pre, "recorded_at"] < recorded.loc[is_pre, "assigned_at"]).all()
    assert (recorded.loc[~is_pre, "recorded_at"] >= recorded.loc[~is_pre, "assigned_at"]).all()


@pytest.fixture(scope="module")
def serving() -> tuple[WorldConfig, pd.DataFrame, pd.DataFrame]:
    """model_metrics of 600 synthetic jobs spread over the 45 days of history."""
    config = WorldConfig.from_params(demo_params())
    rng = np.random.default_rng(0)
    n = 600
    created = config.world_end - pd.to_timedelta(
        np.sort(rng.uniform(3600, 45 * 86400, n))[::-1], unit="s"
    )
    jobs = pd.DataFrame(
        {
            "job_id": [f"J{k:06d}" for k in range(n)],
            "user_id": rng.choice([f"U{k:06d}" for k in range(80)], n),
            "created_at": created,
        }
    )
    truth = pd.DataFrame({"job_id": jobs["job_id"], "preset_label": rng.choice(PRESETS, n)})
    for name, (low, high) in MASTER_PARAM_RANGES.items():
        truth[f"label_{name}"] = rng.uniform(low, high, n)
    truth["aligner_offset_ms"] = rng.normal(0.0, 200.0, n)
    truth["aligned_ok"] = rng.random(n) < 0.75
    truth["defect"] = [None] * (n - 1) + ["corrupt_mix"]
    return config, model_metrics(config.online, config.seed, config.world_end, jobs, truth), truth


def test_serving_logs_cover_more_than_30_days_of_every_task(serving: tuple) -> None:
    config, rows, _ = serving
    assert rows["recorded_at"].max() - rows["recorded_at"].min() > pd.Timedelta(days=30)
    assert rows["recorded_at"].max() <= config.world_end
    assert set(rows["task"]) == {"master_reg", "preset_cls", "align_conf"}


def test_serving_rows_follow_the_rollout_and_fallback_semantics(serving: tuple) -> None:
    config, rows, _ = serving
    rollout_start = config.world_end - pd.Timedelta(days=config.online["rollout_days"][0])
    rollout_end = config.world_end - pd.Timedelta(days=config.online["rollout_days"][1])
    before, during, after = (
        rows[rows["recorded_at"] < rollout_start],
        rows[(rows["recorded_at"] >= rollout_start) & (rows["recorded_at"] < rollout_end)],
        rows[rows["recorded_at"] >= rollout_end],
    )
    assert set(before["model_version"]) == {"1.0.0"}
    assert before["variant"].isna().all()
    assert set(after["model_version"]) == {"1.1.0"}
    assert after["variant"].isna().all()
    assert set(during["variant"]) == {"control", "treatment"}
    assert (
        during["model_version"] == np.where(during["variant"] == "treatment", "1.1.0", "1.0.0")
    ).all()
    ml = rows["source"] == "ml"
    assert rows.loc[ml, "ok"].all()
    assert rows.loc[ml, "error"].isna().all()
    assert not rows.loc[~ml, "ok"].any()
    assert rows.loc[~ml, "error"].notna().all()
    fallback_share = (~ml).mean()
    assert 0.005 < fallback_share < 0.1
    corrupt = rows["error"].str.startswith("TruncatedFileError", na=False)
    assert corrupt.any()
    assert rows.loc[corrupt, "prediction"].isna().all()


def test_predictions_are_contract_json_and_better_for_newer_models(serving: tuple) -> None:
    _, rows, truth = serving
    facts = truth.set_index("job_id")
    errors: dict[str, list[float]] = {}
    for row in rows.dropna(subset=["prediction"]).itertuples():
        prediction = json.loads(row.prediction)
        spec = task_spec(row.task)
        if spec.kind == "regression":
            assert list(prediction) == list(spec.outputs)
            span = np.array([high - low for low, high in spec.ranges.values()])
            label = facts.loc[row.job_id, [f"label_{n}" for n in spec.outputs]].to_numpy(float)
            key = "rules" if row.source == "rules" else row.model_version
            errors.setdefault(key, []).append(
                float(np.mean(np.abs(np.array(list(prediction.values())) - label) / span))
            )
        elif spec.kind == "classification":
            assert prediction[spec.label_key] in spec.outputs
            assert list(prediction["scores"]) == list(spec.outputs)
            assert sum(prediction["scores"].values()) == pytest.approx(1.0, abs=1e-3)
        else:
            assert set(prediction) == {"offset_ms", "confidence"}
            assert 0.0 < prediction["confidence"] < 1.0
    assert np.mean(errors["1.1.0"]) < np.mean(errors["1.0.0"]) < np.mean(errors["rules"])
