"""The world's ground truth: the hidden user model, consent, exclusions, determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from simulation_params import demo_params

from mixai_inference import AudioError, load_audio
from mixai_inference.tasks import (
    ALIGN_CONF,
    MASTER_PARAM_NAMES,
    MASTER_PARAM_RANGES,
    MASTER_REG,
    PRESET_CLS,
    PRESETS,
    task_spec,
)
from mixai_ml.datasets.audio import AudioFolder
from mixai_ml.simulation.config import CONSENT_STATES, DESCRIPTORS, WorldConfig
from mixai_ml.simulation.jobs import plan_jobs
from mixai_ml.simulation.labels import label_jobs, style_targets
from mixai_ml.simulation.online import model_metrics
from mixai_ml.simulation.oracle import oracle_outputs, oracle_table
from mixai_ml.simulation.population import consent_tables, make_users, quality_exclusions
from mixai_ml.simulation.styles import NEIGHBOURS, STYLES
from mixai_ml.simulation.truth import ground_truth
from mixai_ml.simulation.world import World, build_world


def default_config(**overrides: object) -> WorldConfig:
    return WorldConfig.from_params(demo_params(**overrides))


# --- configuration ------------------------------------------------------------------------------


def test_config_rejects_unknown_keys_and_sizes_and_bad_consent_shares() -> None:
    with pytest.raises(ValueError, match="size 'huge'"):
        default_config(size="huge")
    with pytest.raises(ValueError, match=r"demo_data: unknown setting\(s\) n_worker; known: "):
        default_config(n_worker=1)
    tiny_typo = {"tiny": {"n_users": 16, "n_jobs": 40, "clip_seconds": [3, 4], "ab_user": 400}}
    with pytest.raises(ValueError, match=r"demo_data.sizes.tiny: unknown setting\(s\) ab_user"):
        default_config(size="tiny", sizes=tiny_typo)
    with pytest.raises(ValueError, match="sum to 1"):
        default_config(
            consent={"granted": 0.5, "never_asked": 0.1, "refused": 0.1, "withdrawn": 0.1}
        )


# --- users and jobs -----------------------------------------------------------------------------


def test_users_follow_the_consent_shares_and_taste_spread() -> None:
    config = default_config()
    users = make_users(config)
    shares = users["consent_state"].value_counts(normalize=True)
    for state in CONSENT_STATES:
        assert shares[state] == pytest.approx(config.consent[state], abs=0.01)
    for name in MASTER_PARAM_NAMES:
        spread = users[f"taste_{name}"].std()
        assert spread == pytest.approx(config.user_model["taste_sd"][name], rel=0.2)


def test_tiny_worlds_still_have_every_consent_state() -> None:
    users = make_users(default_config(size="tiny"))
    counts = users["consent_state"].value_counts()
    assert set(counts.index) == set(CONSENT_STATES)
    assert counts["withdrawn"] >= 3


def test_jobs_belong_to_every_user_within_the_history() -> None:
    config = default_config()
    users = make_users(config)
    jobs, tasks = plan_jobs(config, users, AudioFolder("unused"))
    assert len(jobs) == len(tasks) == config.n_jobs
    assert set(jobs["user_id"]) == set(users["user_id"])
    assert jobs["job_id"].is_monotonic_increasing
    assert jobs["created_at"].is_monotonic_increasing
    assert jobs["created_at"].min() >= config.world_end - pd.Timedelta(days=config.history_days)
    assert jobs["created_at"].max() <= config.world_end
    durations = [task.duration_s for task in tasks]
    assert config.clip_seconds[0] <= min(durations)
    assert max(durations) <= config.clip_seconds[1]
    styles = pd.Series([task.style for task in tasks]).value_counts(normalize=True)
    assert set(styles.index) == set(STYLES)
    assert styles.min() > 0.08
    defects = pd.Series([task.defect for task in tasks]).value_counts()
    assert defects.to_dict() == {
        name: round(share * config.n_jobs) for name, share in config.defects.items()
    }


def test_users_return_with_a_time_ordered_history() -> None:
    """Per-user adapters learn from returning users' earlier jobs: the default world has
    users with five and ten or more earlier jobs, each user's jobs in time order, the same
    for the same seed."""
    config = default_config()
    jobs, _ = plan_jobs(config, make_users(config), AudioFolder("unused"))
    per_user = jobs.groupby("user_id").size()
    assert (per_user >= 6).sum() >= 0.25 * config.n_users
    assert (per_user >= 11).sum() >= 0.05 * config.n_users
    for _, own in jobs.groupby("user_id"):
        assert own["created_at"].is_monotonic_increasing
    again, _ = plan_jobs(config, make_users(config), AudioFolder("unused"))
    pd.testing.assert_frame_equal(jobs, again)


# --- the hidden user model ----------------------------------------------------------------------


def synthetic_truth(
    config: WorldConfig, users: pd.DataFrame, n: int, seed: int = 0
) -> pd.DataFrame:
    """Jobs with random styles and descriptors, as rendering would measure them."""
    rng = np.random.default_rng(seed)
    truth = pd.DataFrame(
        {
            "job_id": [f"J{k:06d}" for k in range(n)],
            "user_id": rng.choice(users["user_id"], n),
            "style": rng.choice(list(STYLES), n),
            "aligner_offset_ms": rng.normal(0.0, 100.0, n),
            "offset_ms": rng.normal(0.0, 100.0, n),
        }
    )
    for name in DESCRIPTORS:
        truth[f"reference_{name}"] = rng.normal(-10.0, 2.0, n)
        truth[f"mix_{name}"] = truth[f"reference_{name}"] + rng.normal(0.0, 2.5, n)
    return truth


def test_labels_recover_the_hidden_user_model() -> None:
    """Regressing labels (minus preset and taste) on the deviations gives the coefficients back."""
    config = default_config()
    users = make_users(config)
    truth = label_jobs(config, users, synthetic_truth(config, users, 6000))
    model = config.user_model
    taste = users.set_index("user_id").loc[truth["user_id"]]
    preset = np.stack([STYLES[s].preset_vector() for s in truth["style"]])
    responses = {
        "eq_low_gain_db": ("low_db", -model["tone_correction"]),
        "eq_mid_gain_db": ("mid_db", -model["tone_correction"]),
        "eq_high_gain_db": ("high_db", -model["tone_correction"]),
        "comp_threshold_db": ("crest_db", model["threshold_per_crest_db"]),
        "comp_ratio": ("crest_db", model["ratio_per_crest_db"]),
        "stereo_width": ("side_db", model["width_per_side_db"]),
    }
    for k, name in enumerate(MASTER_PARAM_NAMES):
        low, high = MASTER_PARAM_RANGES[name]
        label = truth[f"label_{name}"].to_numpy()
        inside = (label > low) & (label < high)  # clipping would bias the fit
        target = (label - preset[:, k] - taste[f"taste_{name}"].to_numpy())[inside]
        descriptor, coefficient = responses.get(name, ("low_db", 0.0))
        x = truth[f"dev_{descriptor}"].to_numpy()[inside]
        slope, intercept = np.polyfit(x, target, 1)
        assert slope == pytest.approx(coefficient, abs=0.03), name
        assert intercept == pytest.approx(0.0, abs=0.1 * (high - low) / 12)
        residual = target - slope * x - intercept
        assert residual.std() == pytest.approx(model["noise_sd"][name], rel=0.1), name
    for name, (low, high) in MASTER_PARAM_RANGES.items():
        assert truth[f"label_{name}"].between(low, high).all()


def test_deviations_are_measured_against_each_styles_target() -> None:
    config = default_config()
    users = make_users(config)
    truth = label_jobs(config, users, synthetic_truth(config, users, 600))
    targets = style_targets(truth)
    for name in DESCRIPTORS:
        expected = truth[f"mix_{name}"] - targets.loc[truth["style"], name].to_numpy()
        np.testing.assert_allclose(truth[f"dev_{name}"], expected)
        assert (
            truth.groupby("style")[f"reference_{name}"].median().to_dict()
            == targets[name].to_dict()
        )


def test_presets_are_mostly_the_style_otherwise_favourite_or_neighbour() -> None:
    config = default_config()
    users = make_users(config)
    truth = label_jobs(config, users, synthetic_truth(config, users, 6000))
    agreement = config.user_model["preset_agreement"]
    source = truth["preset_source"].value_counts(normalize=True)
    assert source["style"] == pytest.approx(agreement, abs=0.02)
    assert source["favourite"] == pytest.approx(
        (1 - agreement) * config.user_model["favourite_share"], abs=0.02
    )
    by_style = truth[truth["preset_source"] == "style"]
    assert (by_style["preset_label"] == by_style["style"]).all()
    favourite = users.set_index("user_id").loc[truth["user_id"], "favourite_preset"].to_numpy()
    chosen = (truth["preset_source"] == "favourite").to_numpy()
    assert (truth.loc[chosen, "preset_label"].to_numpy() == favourite[chosen]).all()
    for row in truth[truth["preset_source"] == "neighbour"].itertuples():
        assert row.preset_label in NEIGHBOURS[row.style]
    assert set(truth["preset_label"]) == set(PRESETS)


def test_the_oracle_knows_all_but_the_noise() -> None:
    """The oracle's master_reg answer is the label without its noise (the median of the
    label: least absolute error), its preset probabilities are the choice's true ones, and
    it answers alignment by the outcome."""
    config = default_config()
    users = make_users(config)
    truth = label_jobs(config, users, synthetic_truth(config, users, 6000))
    world = World(config, users, truth, *(pd.DataFrame(),) * 4)
    oracle = oracle_outputs(world)
    labels = truth[[f"label_{name}" for name in MASTER_PARAM_NAMES]].to_numpy()
    noise = truth[[f"noise_{name}" for name in MASTER_PARAM_NAMES]].to_numpy()
    lows, highs = (np.array(bound) for bound in zip(*MASTER_PARAM_RANGES.values(), strict=True))
    inside = (labels > lows) & (labels < highs)  # neither clipped
    inside &= (oracle[MASTER_REG] > lows) & (oracle[MASTER_REG] < highs)
    np.testing.assert_allclose((labels - oracle[MASTER_REG])[inside], noise[inside], atol=1e-9)
    errors = np.abs(labels - oracle[MASTER_REG]).mean(axis=0)
    for shift in (-0.05, 0.05):  # any other answer does worse
        moved = np.clip(oracle[MASTER_REG] + shift * (highs - lows), lows, highs)
        assert (np.abs(labels - moved).mean(axis=0) > errors).all()
    probabilities = oracle[PRESET_CLS]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    chosen = np.eye(len(PRESETS))[truth["preset_label"].map(PRESETS.index).to_numpy()]
    np.testing.assert_allclose(chosen.mean(axis=0), probabilities.mean(axis=0), atol=0.015)
    np.testing.assert_array_equal(oracle[ALIGN_CONF][:, 0], truth["aligned_ok"].astype(float))
    table = oracle_table(world)
    assert len(table) == 3 * len(truth)
    first = table[(table["task"] == PRESET_CLS)].iloc[0]
    assert json.loads(first["outputs"]) == pytest.approx(probabilities[0], abs=1e-6)


def test_alignment_is_ok_within_20_ms() -> None:
    config = default_config()
    users = make_users(config)
    truth = label_jobs(config, users, synthetic_truth(config, users, 500))
    error = (truth["aligner_offset_ms"] - truth["offset_ms"]).abs()
    assert (truth["aligned_ok"] == (error <= 20.0)).all()


# --- consent and exclusions ---------------------------------------------------------------------


def test_consent_rows_and_exclusions_cover_every_state_and_reason() -> None:
    config = default_config(size="tiny")
    users = make_users(config)
    jobs, tasks = plan_jobs(config, users, AudioFolder("unused"))
    consent, exclusions = consent_tables(config, users, jobs)
    defects = pd.Series([task.defect for task in tasks], index=jobs["job_id"])
    exclusions = pd.concat([exclusions, quality_exclusions(config, jobs, defects)])
    state = users.set_index("user_id")["consent_state"]
    rows = consent.set_index("user_id")
    assert set(rows.index) == set(state[state != "never_asked"].index)
    assert rows["consented"].to_dict() == (state[state != "never_asked"] == "granted").to_dict()
    withdrawn = rows[rows["withdrawn_at"].notna()]
    assert set(withdrawn.index) == set(state[state == "withdrawn"].index)
    assert (withdrawn["updated_at"] == withdrawn["withdrawn_at"]).all()
    assert (withdrawn["withdrawn_at"] > config.world_end - pd.Timedelta(hours=24)).any()
    first_job = jobs.groupby("user_id")["created_at"].min()
    assert (withdrawn["withdrawn_at"] > first_job[withdrawn.index]).all()

    assert set(exclusions["reason"]) == {"withdrawal", "quality", "legal_hold", "manual"}
    user_level = exclusions[exclusions["job_id"].isna()]
    job_level = exclusions[exclusions["user_id"].isna()]
    assert set(user_level["reason"]) == {"withdrawal", "quality", "legal_hold", "manual"}
    assert {"quality", "legal_hold", "manual"} <= set(job_level["reason"])
    holds = set(user_level.loc[user_level["reason"] == "legal_hold", "user_id"])
    assert holds & set(withdrawn.index), "some withdrawn users are under a legal hold"
    assert holds - set(withdrawn.index), "and some consenting users"
    assert set(exclusions.loc[exclusions["reason"] == "withdrawal", "user_id"]) <= set(
        withdrawn.index
    )
    assert set(exclusions.loc[exclusions["reason"] == "quality", "job_id"].dropna()) <= set(
        defects.dropna().index
    )
    assert (exclusions["created_at"] <= config.world_end).all()


# --- the built world ----------------------------------------------------------------------------


def _digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*.flac"))
    }


@pytest.mark.slow
def test_the_same_seed_gives_identical_tables_and_audio_bytes(
    tiny_world: tuple[World, Path], tmp_path: Path
) -> None:
    """Rebuilt with one worker instead of two: the same rows, the same files, byte for byte."""
    world, root = tiny_world
    again = build_world(
        WorldConfig.from_params(demo_params(size="tiny", n_workers=1)), AudioFolder(tmp_path)
    )
    for table in ("jobs", "consent", "exclusions", "labels", "truth", "users"):
        pd.testing.assert_frame_equal(getattr(world, table), getattr(again, table))
    assert _digests(root) == _digests(tmp_path)
    config = world.config
    pd.testing.assert_frame_equal(
        model_metrics(config.online, config.seed, config.world_end, world.jobs, world.truth),
        model_metrics(config.online, config.seed, config.world_end, again.jobs, again.truth),
    )


@pytest.mark.slow
def test_every_job_has_its_files_and_three_labels(tiny_world: tuple[World, Path]) -> None:
    world, root = tiny_world
    truth = world.truth.set_index("job_id")
    for job in world.jobs.itertuples():
        defect = truth.loc[job.job_id, "defect"]
        vocal, _ = load_audio(root / job.vocal_path)
        assert vocal.shape[0] == 1  # vocals are mono
        for path in (job.inst_path, job.trimmed_inst_path):
            if isinstance(path, str):
                assert load_audio(root / path)[0].shape[0] == 2
        if defect == "corrupt_mix":
            with pytest.raises(AudioError):
                load_audio(root / job.mix_path)
        else:
            assert load_audio(root / job.mix_path)[0].shape[0] == 2
    trimmed = world.jobs["trimmed_inst_path"].notna()
    assert trimmed.to_numpy().tolist() == (world.truth["trimmed_s"] > 0).tolist()
    assert sorted((root / "jobs").iterdir()) == sorted(
        root / "jobs" / j for j in world.jobs["job_id"]
    )
    tasks = world.labels.groupby("job_id")["task"].apply(lambda t: sorted(t))
    assert tasks.map(lambda t: t == ["align_conf", "master_reg", "preset_cls"]).all()
    assert set(tasks.index) == set(world.jobs["job_id"])


@pytest.mark.slow
def test_labels_are_contract_json_from_the_truth(tiny_world: tuple[World, Path]) -> None:
    world, _ = tiny_world
    truth = world.truth.set_index("job_id")
    created = world.jobs.set_index("job_id")["created_at"]
    for row in world.labels.itertuples():
        label = json.loads(row.label)
        fact = truth.loc[row.job_id]
        assert row.created_at > created[row.job_id]
        spec = task_spec(row.task)
        if spec.kind == "regression":
            assert list(label) == list(spec.outputs)
            for name, value in label.items():
                assert value == pytest.approx(fact[f"label_{name}"], abs=5e-4)
        elif spec.kind == "classification":
            assert label == {spec.label_key: fact[f"{spec.label_key}_label"]}
        else:
            assert set(label) == {"offset_ms", spec.label_key}
            assert label[spec.label_key] is bool(fact[spec.label_key])
            assert label["offset_ms"] == pytest.approx(fact["offset_ms"], abs=0.01)


@pytest.mark.slow
def test_ground_truth_is_json_with_every_hidden_parameter(tiny_world: tuple[World, Path]) -> None:
    world, _ = tiny_world
    truth = json.loads(json.dumps(ground_truth(world, {"exp": {"true_effects": {}}})))
    assert truth["config"]["seed"] == world.config.seed
    assert truth["user_model"] == json.loads(json.dumps(dict(world.config.user_model)))
    assert set(truth["style_targets"]) == set(world.truth["style"])
    assert truth["presets"]["loud_edm"] == dict(STYLES["loud_edm"].preset)
    summary = truth["summary"]
    assert summary["n_jobs"] == len(world.jobs)
    assert sum(summary["users_per_consent_state"].values()) == len(world.users)
    assert summary["aligner_failure_rate"] == pytest.approx(1 - world.truth["aligned_ok"].mean())


@pytest.mark.slow
def test_realistic_clips_fail_the_aligner_in_a_meaningful_minority(tmp_path: Path) -> None:
    """On 8 s clips (as in the default world), 15-35 % is the design; a small sample is noisy."""
    params = demo_params(size="check", n_workers=2)
    params["sizes"]["check"] = {
        "n_users": 12,
        "n_jobs": 48,
        "clip_seconds": [8.0, 8.0],
        "ab_users": 10,
    }
    world = build_world(WorldConfig.from_params(params), AudioFolder(tmp_path))
    failure_rate = 1.0 - world.truth["aligned_ok"].mean()
    assert 0.08 <= failure_rate <= 0.5
    failed = ~world.truth["aligned_ok"]
    psr = world.truth["align_xcorr_peak_to_sidelobe_ratio"]
    assert psr[failed].median() < psr[~failed].median()  # failures show in the features
