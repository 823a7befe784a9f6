"""The synthetic MIXAI world: users, consent, jobs with their audio, labels and ground truth.

The world is a pure function of its parameters (``conf/base/parameters_demo_data.yml``).
Every random draw comes from a generator seeded by ``(seed, stream)`` and, for a job's
audio, ``(seed, stream, job index)``; every timestamp is relative to ``world_end``. The
same parameters therefore give identical rows and identical audio bytes, whatever the
number of worker processes.

Hidden user model (recorded in the ground truth):

* each user has a *taste*: an offset per mastering parameter, a favourite preset and a
  few favourite styles their songs are in;
* a job's mix deviates from its style's target (the median of the style's un-deviated
  reference mixes) in tone (power below 150 Hz, in 1.5-4 kHz and above 6 kHz), crest
  factor and side/mid balance; the user's final mastering parameters are the style's
  preset, minus a share of the tonal deviation, with compression and width following the
  crest and side deviations, plus their taste and per-job noise, clipped to CONTRACTS §5:

  ``eq_band = preset_band - tone_correction * tone_deviation_band + taste + noise``
  ``comp_threshold_db = preset + threshold_per_crest_db * crest_deviation + taste + noise``
  ``comp_ratio = preset + ratio_per_crest_db * crest_deviation + taste + noise``
  ``stereo_width = preset + width_per_side_db * side_deviation + taste + noise``
  ``target_lufs``, ``limiter_ceiling_dbtp`` = preset + taste + noise;

* the preset they pick is their style's with probability ``preset_agreement``, otherwise
  their favourite (share ``favourite_share``) or a neighbouring style;
* the alignment label is the true vocal offset against the alignment reference and
  whether :func:`mixai_inference.estimate_alignment` on the uploaded files lands within
  20 ms of it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from mixai_inference import estimate_alignment
from mixai_inference.tasks import ALIGN_TOLERANCE_MS, MASTER_PARAM_NAMES, PRESETS
from mixai_ml.datasets.audio import AudioDataset, from_pcm16, to_pcm16
from mixai_ml.dsp.mastering import clip_to_ranges
from mixai_ml.progress import progress
from mixai_ml.simulation.recording import MixSpec, TakeSpec, describe, render_job_audio
from mixai_ml.simulation.styles import NEIGHBOURS, STYLES
from mixai_ml.simulation.synth import draw_song_spec, render_song

CONSENT_STATES: Final = ("granted", "never_asked", "refused", "withdrawn")
DEFECTS: Final = ("corrupt_mix", "silent_vocal", "clipped_mix")
DESCRIPTORS: Final = ("low_db", "mid_db", "high_db", "crest_db", "side_db")

# Independent random streams: (seed, stream[, index]).
USERS, JOBS, LABELS, EXCLUSIONS, ONLINE, EXPERIMENTS, AUDIO = 1, 2, 3, 4, 5, 6, 100


def stream(seed: int, *keys: int) -> np.random.Generator:
    """The random generator of ``(seed, *keys)``: independent of every other key."""
    return np.random.default_rng([seed, *keys])


def compact_json(value: Mapping[str, Any]) -> str:
    """``value`` as JSON text without spaces (label and prediction columns)."""
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class WorldConfig:
    """Resolved ``demo_data`` parameters (see ``parameters_demo_data.yml`` for each key)."""

    seed: int
    size: str
    n_users: int
    n_jobs: int
    clip_seconds: tuple[float, float]
    ab_users: int
    sample_rate: int
    world_end: pd.Timestamp
    history_days: float
    n_workers: int
    consent: Mapping[str, float]
    exclusions: Mapping[str, float]
    defects: Mapping[str, float]
    takes: Mapping[str, Any]
    mixes: Mapping[str, Any]
    user_model: Mapping[str, Any]
    online: Mapping[str, Any]
    ab_baseline: Mapping[str, float]
    experiments: tuple[Mapping[str, Any], ...]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> WorldConfig:
        """Resolve ``params`` (the ``demo_data`` mapping) for its ``size``.

        Raises:
            ValueError: on an unknown size, consent shares that do not sum to 1, or
                too few users or jobs for every consent state.
        """
        sizes = params["sizes"]
        if params["size"] not in sizes:
            raise ValueError(f"demo_data.size {params['size']!r} is not one of {sorted(sizes)}")
        size = sizes[params["size"]]
        consent = {state: float(params["consent"][state]) for state in CONSENT_STATES}
        if abs(sum(consent.values()) - 1.0) > 1e-9:
            raise ValueError(f"demo_data.consent shares must sum to 1, got {consent}")
        config = cls(
            seed=int(params["seed"]),
            size=str(params["size"]),
            n_users=int(size["n_users"]),
            n_jobs=int(size["n_jobs"]),
            clip_seconds=(float(size["clip_seconds"][0]), float(size["clip_seconds"][1])),
            ab_users=int(size["ab_users"]),
            sample_rate=int(params["sample_rate"]),
            world_end=pd.Timestamp(params["world_end"]).tz_convert("UTC"),
            history_days=float(params["history_days"]),
            n_workers=int(params.get("n_workers") or os.cpu_count() or 1),
            consent=consent,
            exclusions=dict(params["exclusions"]),
            defects={name: float(params["defects"][name]) for name in DEFECTS},
            takes=dict(params["takes"]),
            mixes=dict(params["mixes"]),
            user_model=dict(params["user_model"]),
            online=dict(params["online"]),
            ab_baseline={name: float(value) for name, value in params["ab_baseline"].items()},
            experiments=tuple(dict(experiment) for experiment in params["experiments"]),
        )
        if config.n_users < 8 or config.n_jobs < config.n_users:
            raise ValueError("demo_data needs at least 8 users and one job per user")
        return config

    def as_json(self) -> dict[str, Any]:
        """The world's parameters as JSON-ready values (for the ground truth).

        ``n_workers`` is left out: it changes how fast the world is built, not the world.
        """
        values = asdict(self)
        values["world_end"] = self.world_end.isoformat()
        del values["n_workers"]
        return values


# --- users --------------------------------------------------------------------------------------


def _quota(share: float, total: int, minimum: int) -> int:
    return min(total, max(minimum, round(share * total)))


def make_users(config: WorldConfig) -> pd.DataFrame:
    """Users with their consent state and hidden taste.

    Returns:
        One row per user: ``user_id``, ``consent_state``, ``favourite_preset``,
        ``activity`` (relative job rate), ``style_weight_<style>`` (how likely their
        songs are in each style) and ``taste_<param>`` for the eight mastering parameters.
    """
    rng = stream(config.seed, USERS)
    n = config.n_users
    states = np.full(n, "granted", dtype=object)
    order = rng.permutation(n)
    start = 0
    for state, minimum in (("never_asked", 1), ("refused", 1), ("withdrawn", 3)):
        count = _quota(config.consent[state], n, minimum)
        states[order[start : start + count]] = state
        start += count
    taste_sd = config.user_model["taste_sd"]
    users = pd.DataFrame(
        {
            "user_id": [f"U{number:06d}" for number in range(1, n + 1)],
            "consent_state": states,
            "favourite_preset": rng.choice(PRESETS, size=n),
            "activity": rng.lognormal(0.0, 0.8, size=n),
        }
    )
    weights = rng.dirichlet(np.full(len(STYLES), 0.6), size=n)
    for k, style in enumerate(STYLES):
        users[f"style_weight_{style}"] = weights[:, k]
    for name in MASTER_PARAM_NAMES:
        users[f"taste_{name}"] = rng.normal(0.0, float(taste_sd[name]), size=n)
    return users


# --- jobs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobTask:
    """Everything a worker needs to render one job (picklable)."""

    index: int
    job_id: str
    style: str
    duration_s: float
    sparse_vocal: bool
    take: TakeSpec
    mix: MixSpec
    defect: str | None
    seed: int
    sample_rate: int
    audio_root: str


def _draw_take(rng: np.random.Generator, takes: Mapping[str, Any]) -> TakeSpec:
    trimmed = rng.random() < takes["trimmed_share"]
    long_offset = rng.random() < takes["long_offset_share"]
    shares = takes["monitoring"]
    monitoring = str(
        rng.choice(list(shares), p=np.array(list(shares.values())) / sum(shares.values()))
    )
    noisy = rng.random() < takes["noisy_share"]
    reverb = rng.random() < takes["reverb_share"]
    offset_ms = (
        rng.uniform(-1.0, 1.0) * takes["long_offset_ms"]
        if long_offset
        else rng.normal(0.0, takes["offset_ms_sd"])
    )
    return TakeSpec(
        recording_offset_ms=float(offset_ms),
        lead_silence_s=float(rng.uniform(*takes["lead_silence_s"])) if trimmed else 0.0,
        bleed_db=float(rng.uniform(*takes["bleed_db"][monitoring]))
        if monitoring in takes["bleed_db"]
        else None,
        noise_dbfs=float(rng.uniform(*takes["noise_dbfs"]["noisy" if noisy else "clean"])),
        hum=bool(rng.random() < takes["hum_share"]),
        gated=bool(rng.random() < takes["gated_share"]),
        reverb_s=float(rng.uniform(*takes["reverb_s"])) if reverb else 0.0,
        peak_dbfs=float(rng.uniform(*takes["vocal_peak_dbfs"])),
        instrumental_peak_dbfs=float(rng.uniform(*takes["instrumental_peak_dbfs"])),
    )


def _draw_mix(rng: np.random.Generator, style: str, mixes: Mapping[str, Any]) -> MixSpec:
    tone = np.clip(rng.normal(0.0, mixes["tone_sd_db"], size=3), -8.0, 8.0)
    return MixSpec(
        vocal_db=float(STYLES[style].vocal_db - 3.0 + rng.normal(0.0, mixes["vocal_sd_db"])),
        tone_db=(float(tone[0]), float(tone[1]), float(tone[2])),
        dynamics=float(rng.uniform(-1.0, 1.0)),
        width=float(np.clip(1.0 + rng.normal(0.0, mixes["width_sd"]), 0.5, 1.6)),
        rms_dbfs=float(rng.uniform(*mixes["rms_dbfs"])),
    )


def plan_jobs(
    config: WorldConfig, users: pd.DataFrame, audio_root: str
) -> tuple[pd.DataFrame, list[JobTask]]:
    """Who made which job when, in which style, recorded and mixed how.

    Every user has at least one job; the rest follow the users' activity. Job ids are in
    order of creation.

    Returns:
        The ``jobs`` table rows (paths relative to ``audio_root``, ``trimmed_inst_path``
        filled in after rendering) and one :class:`JobTask` per job.
    """
    rng = stream(config.seed, JOBS)
    n_users, n_jobs = config.n_users, config.n_jobs
    activity = users["activity"].to_numpy()
    owners = np.concatenate(
        [
            np.arange(n_users),
            rng.choice(n_users, size=n_jobs - n_users, p=activity / activity.sum()),
        ]
    )
    history_s = config.history_days * 86400.0
    offsets_s = np.sort(rng.uniform(0.0, history_s - 3600.0, size=n_jobs))[::-1]
    created = config.world_end - pd.to_timedelta(np.round(offsets_s), unit="s")
    owners = rng.permutation(owners)
    style_weights = users[[f"style_weight_{style}" for style in STYLES]].to_numpy()
    defect_of = np.full(n_jobs, None, dtype=object)
    order = rng.permutation(n_jobs)
    start = 0
    for defect in DEFECTS:
        count = _quota(config.defects[defect], n_jobs, 1)
        defect_of[order[start : start + count]] = defect
        start += count
    tasks, rows = [], []
    for index in range(n_jobs):
        job_id = f"J{index + 1:06d}"
        style = str(rng.choice(list(STYLES), p=style_weights[owners[index]]))
        tasks.append(
            JobTask(
                index=index,
                job_id=job_id,
                style=style,
                duration_s=float(np.round(rng.uniform(*config.clip_seconds), 2)),
                sparse_vocal=bool(rng.random() < config.takes["sparse_share"]),
                take=_draw_take(rng, config.takes),
                mix=_draw_mix(rng, style, config.mixes),
                defect=defect_of[index],
                seed=config.seed,
                sample_rate=config.sample_rate,
                audio_root=audio_root,
            )
        )
        folder = f"jobs/{job_id}"
        rows.append(
            {
                "job_id": job_id,
                "user_id": users["user_id"].iloc[owners[index]],
                "created_at": created[index],
                "vocal_path": f"{folder}/vocal.flac",
                "inst_path": f"{folder}/inst.flac",
                "trimmed_inst_path": None,
                "mix_path": f"{folder}/mix.flac",
            }
        )
    return pd.DataFrame(rows), tasks


def render_job(task: JobTask) -> dict[str, Any]:
    """Render, write and align one job (runs in a worker process).

    Writes ``vocal.flac``, ``inst.flac``, ``inst_trimmed.flac`` (when trimmed) and
    ``mix.flac`` under ``<audio_root>/jobs/<job_id>/``, runs the production aligner on the
    vocal and the alignment reference exactly as they load from those files, and returns
    the job's hidden facts as JSON-ready scalars.
    """
    rng = stream(task.seed, AUDIO, task.index)
    sr = task.sample_rate
    coverage = (0.15, 0.3) if task.sparse_vocal else (0.35, 0.7)
    spec = draw_song_spec(STYLES[task.style], task.duration_s, rng, vocal_coverage=coverage)
    song = render_song(spec, sr, rng)
    if task.defect == "silent_vocal":  # a muted microphone: the take holds only its noise
        song = type(song)(**{**song.__dict__, "vocal": np.zeros_like(song.vocal)})
    audio = render_job_audio(song, task.take, task.mix, sr, rng)
    mix = audio.mix
    if task.defect == "clipped_mix":
        mix = np.clip(4.0 * mix, -1.0, 1.0)
    folder = Path(task.audio_root) / "jobs" / task.job_id
    files = {"vocal": audio.vocal, "inst": audio.instrumental, "mix": mix}
    if audio.trimmed is not None:
        files["inst_trimmed"] = audio.trimmed
    else:  # left over from an earlier world
        (folder / "inst_trimmed.flac").unlink(missing_ok=True)
    for name, samples in files.items():
        AudioDataset(filepath=str(folder / f"{name}.flac")).save((samples, sr))
    # the aligner sees exactly what loading the files gives
    reference = audio.instrumental if audio.trimmed is None else audio.trimmed
    alignment = estimate_alignment(
        from_pcm16(to_pcm16(audio.vocal)), from_pcm16(to_pcm16(reference)), sr
    )
    if task.defect == "corrupt_mix":  # an interrupted upload: the file ends mid-stream
        path = folder / "mix.flac"
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 5])
    mix_facts = asdict(describe(mix, sr))
    reference_facts = asdict(describe(audio.reference, sr))
    return {
        "job_id": task.job_id,
        "tempo_bpm": spec.tempo_bpm,
        "tonic": spec.tonic,
        "loop": spec.loop,
        "lead": spec.lead,
        "brightness_hz": spec.brightness_hz,
        "vocal_coverage": spec.vocal_coverage,
        "timing_jitter_ms": spec.timing_jitter_ms,
        "n_vocal_notes": int(song.vocal_onsets_s.size),
        "trimmed_s": audio.trimmed_s,
        "offset_ms": audio.offset_ms,
        "aligner_offset_ms": alignment.offset_ms,
        **{
            f"align_{key}": value
            for key, value in alignment.as_dict().items()
            if key != "offset_ms"
        },
        **{f"mix_{key}": value for key, value in mix_facts.items()},
        **{f"reference_{key}": value for key, value in reference_facts.items()},
    }


def render_jobs(tasks: list[JobTask], n_workers: int) -> pd.DataFrame:
    """:func:`render_job` of every task in ``n_workers`` processes, in task order.

    A progress bar shows on a terminal (see :mod:`mixai_ml.progress`).
    """

    def results() -> Iterator[dict[str, Any]]:
        if n_workers <= 1:
            yield from map(render_job, tasks)
            return
        with ProcessPoolExecutor(n_workers, mp_context=get_context("spawn")) as pool:
            yield from pool.map(render_job, tasks, chunksize=4)

    rows = list(progress(results(), total=len(tasks), desc="demo jobs", unit="job"))
    return pd.DataFrame(rows)


# --- labels -------------------------------------------------------------------------------------


def style_targets(truth: pd.DataFrame) -> pd.DataFrame:
    """Per style, the median descriptors of its reference (un-deviated) mixes: its target."""
    columns = {f"reference_{name}": name for name in DESCRIPTORS}
    return truth.groupby("style")[list(columns)].median().rename(columns=columns)


def label_jobs(config: WorldConfig, users: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Add the hidden user model's deviations, chosen parameters and preset to ``truth``.

    Args:
        config: the world's parameters (``user_model``).
        users: :func:`make_users` rows.
        truth: one row per job with ``job_id``, ``user_id``, ``style`` and the
            ``mix_*`` / ``reference_*`` descriptors of :func:`render_job`.

    Returns:
        ``truth`` with ``dev_<descriptor>``, ``clean_<param>`` (preset plus deviation
        response), ``noise_<param>``, ``label_<param>`` (clipped to the contract ranges),
        ``preset_label``, ``preset_source`` (``style``, ``favourite``, ``neighbour``) and
        ``aligned_ok``.
    """
    model = config.user_model
    rng = stream(config.seed, LABELS)
    targets = style_targets(truth).loc[truth["style"]].to_numpy()
    deviation = truth[[f"mix_{name}" for name in DESCRIPTORS]].to_numpy() - targets
    truth = truth.copy()
    for k, name in enumerate(DESCRIPTORS):
        truth[f"dev_{name}"] = deviation[:, k]
    low, mid, high, crest, side = deviation.T
    response = np.zeros((len(truth), len(MASTER_PARAM_NAMES)))
    p = {name: k for k, name in enumerate(MASTER_PARAM_NAMES)}
    for band, dev in (("eq_low_gain_db", low), ("eq_mid_gain_db", mid), ("eq_high_gain_db", high)):
        response[:, p[band]] = -float(model["tone_correction"]) * dev
    response[:, p["comp_threshold_db"]] = float(model["threshold_per_crest_db"]) * crest
    response[:, p["comp_ratio"]] = float(model["ratio_per_crest_db"]) * crest
    response[:, p["stereo_width"]] = float(model["width_per_side_db"]) * side
    presets = np.stack([STYLES[style].preset_vector() for style in truth["style"]])
    clean = presets + response
    taste = users.set_index("user_id").loc[
        truth["user_id"], [f"taste_{n}" for n in MASTER_PARAM_NAMES]
    ]
    noise = rng.normal(
        0.0, [float(model["noise_sd"][n]) for n in MASTER_PARAM_NAMES], size=clean.shape
    )
    labels = clip_to_ranges(clean + taste.to_numpy() + noise)
    for k, name in enumerate(MASTER_PARAM_NAMES):
        truth[f"clean_{name}"] = clean[:, k]
        truth[f"noise_{name}"] = noise[:, k]
        truth[f"label_{name}"] = labels[:, k]
    favourite = users.set_index("user_id").loc[truth["user_id"], "favourite_preset"].to_numpy()
    draw = rng.random((len(truth), 3))
    source = np.where(
        draw[:, 0] < model["preset_agreement"],
        "style",
        np.where(draw[:, 1] < model["favourite_share"], "favourite", "neighbour"),
    )
    neighbour = [
        NEIGHBOURS[style][int(u * 2)] for style, u in zip(truth["style"], draw[:, 2], strict=True)
    ]
    truth["preset_source"] = source
    truth["preset_label"] = np.where(
        source == "style", truth["style"], np.where(source == "favourite", favourite, neighbour)
    )
    truth["aligned_ok"] = (
        truth["aligner_offset_ms"] - truth["offset_ms"]
    ).abs() <= ALIGN_TOLERANCE_MS
    return truth


def labels_table(jobs: pd.DataFrame, truth: pd.DataFrame, config: WorldConfig) -> pd.DataFrame:
    """The ``labels`` rows: three per job, minutes after the job was created."""
    rng = stream(config.seed, LABELS, 1)
    created = jobs.set_index("job_id").loc[truth["job_id"], "created_at"].to_numpy()
    done = pd.DatetimeIndex(created) + pd.to_timedelta(
        np.round(rng.uniform(120, 3600, len(truth))), unit="s"
    )
    rows = []
    for row, at in zip(truth.itertuples(index=False), done, strict=True):
        facts = row._asdict()
        master = {name: round(float(facts[f"label_{name}"]), 3) for name in MASTER_PARAM_NAMES}
        align = {"offset_ms": round(float(row.offset_ms), 2), "aligned_ok": bool(row.aligned_ok)}
        for task, label in (
            ("master_reg", master),
            ("preset_cls", {"preset": row.preset_label}),
            ("align_conf", align),
        ):
            rows.append(
                {"job_id": row.job_id, "task": task, "label": compact_json(label), "created_at": at}
            )
    return pd.DataFrame(rows)


# --- consent and exclusions ----------------------------------------------------------------------


def consent_tables(
    config: WorldConfig, users: pd.DataFrame, jobs: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``ml_consent`` and ``ml_exclusions`` rows.

    Granted and refused users answered shortly before their first job; withdrawn users
    consented, made jobs, then withdrew (the first of them less than 6 hours before
    ``world_end``, inside the purge's 24-hour promise); never-asked users have no row.
    Exclusions: ``withdrawal`` rows for most withdrawn users, ``legal_hold`` on some
    withdrawn and some consenting users and on single jobs, ``quality`` on most
    defective jobs and on a spam account, ``manual`` on staff accounts and single jobs.
    """
    rng = stream(config.seed, EXCLUSIONS)
    first_job = jobs.groupby("user_id")["created_at"].min()
    end = config.world_end
    consent_rows, withdrawn_at = [], {}
    withdrawn_users = users.loc[users["consent_state"] == "withdrawn", "user_id"].tolist()
    for user in users.itertuples(index=False):
        if user.consent_state == "never_asked":
            continue
        answered = first_job[user.user_id] - pd.Timedelta(seconds=round(rng.uniform(60, 3 * 86400)))
        if user.consent_state == "withdrawn":
            earliest = first_job[user.user_id] + pd.Timedelta(hours=1)
            span = max((end - earliest).total_seconds(), 3600.0)
            recent = user.user_id == withdrawn_users[0]
            seconds = rng.uniform(600, 6 * 3600) if recent else rng.uniform(0, span)
            at = (
                end - pd.Timedelta(seconds=round(seconds))
                if recent
                else earliest + pd.Timedelta(seconds=round(seconds))
            )
            withdrawn_at[user.user_id] = min(at, end - pd.Timedelta(minutes=5))
        consent_rows.append(
            {
                "user_id": user.user_id,
                "consented": user.consent_state == "granted",
                "updated_at": withdrawn_at.get(user.user_id, answered),
                "withdrawn_at": withdrawn_at.get(user.user_id, pd.NaT),
            }
        )
    consent = pd.DataFrame(consent_rows)
    consent["withdrawn_at"] = pd.to_datetime(consent["withdrawn_at"], utc=True)

    ex = config.exclusions
    exclusions: list[dict[str, Any]] = []

    def exclude(
        user_id: str | None, job_id: str | None, reason: str, note: str, at: pd.Timestamp
    ) -> None:
        exclusions.append(
            {"user_id": user_id, "job_id": job_id, "reason": reason, "note": note, "created_at": at}
        )

    def some(candidates: list[str], count: int) -> list[str]:
        count = min(count, len(candidates))
        return sorted(rng.choice(candidates, size=count, replace=False).tolist()) if count else []

    n_withdrawn = len(withdrawn_users)
    for user_id in some(
        withdrawn_users, _quota(ex["withdrawal_share_of_withdrawn"], n_withdrawn, 1)
    ):
        exclude(user_id, None, "withdrawal", "user withdrew ML consent", withdrawn_at[user_id])
    for user_id in some(
        withdrawn_users, _quota(ex["legal_hold_share_of_withdrawn"], n_withdrawn, 1)
    ):
        at = withdrawn_at[user_id] + pd.Timedelta(minutes=30)
        exclude(
            user_id, None, "legal_hold", "legal hold: data preserved for a dispute", min(at, end)
        )
    granted = users.loc[users["consent_state"] == "granted", "user_id"].tolist()
    chosen = some(
        granted, int(ex["legal_hold_users"]) + int(ex["quality_users"]) + int(ex["manual_users"])
    )
    holds = chosen[: int(ex["legal_hold_users"])]
    spam = chosen[len(holds) : len(holds) + int(ex["quality_users"])]
    staff = chosen[len(holds) + len(spam) :]
    for reason, members, note in (
        ("legal_hold", holds, "legal hold: account under investigation"),
        ("quality", spam, "spam account: uploads are not music"),
        ("manual", staff, "staff test account"),
    ):
        for user_id in members:
            exclude(user_id, None, reason, note, first_job[user_id] + pd.Timedelta(days=1))
    job_ids = jobs["job_id"].tolist()
    created = jobs.set_index("job_id")["created_at"]
    for reason, count, note in (
        ("legal_hold", int(ex["legal_hold_jobs"]), "legal hold: copyright claim on this upload"),
        ("manual", int(ex["manual_jobs"]), "excluded on the user's support request"),
    ):
        for job_id in some(job_ids, max(count, 1)):
            exclude(None, job_id, reason, note, min(created[job_id] + pd.Timedelta(days=2), end))
    return consent, pd.DataFrame(exclusions)


def quality_exclusions(config: WorldConfig, jobs: pd.DataFrame, defects: pd.Series) -> pd.DataFrame:
    """``quality`` exclusions of the defective jobs support noticed (a share of them)."""
    rng = stream(config.seed, EXCLUSIONS, 1)
    defective = defects.dropna()
    flagged = defective[rng.random(len(defective)) < config.exclusions["quality_share_of_defects"]]
    created = jobs.set_index("job_id")["created_at"]
    return pd.DataFrame(
        {
            "user_id": None,
            "job_id": flagged.index,
            "reason": "quality",
            "note": [f"defective upload: {defect.replace('_', ' ')}" for defect in flagged],
            "created_at": [
                min(created[job] + pd.Timedelta(hours=6), config.world_end) for job in flagged.index
            ],
        }
    )


# --- the whole world ----------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """The application tables of the world and the hidden facts behind them.

    Attributes:
        config: the parameters.
        users: :func:`make_users` (hidden).
        truth: one row per job: its plan (style, take, mix, defect), what rendering
            measured and the hidden user model's labels (see :func:`label_jobs`).
        jobs, consent, exclusions, labels: rows of the ``jobs``, ``ml_consent``,
            ``ml_exclusions`` and ``labels`` tables.
    """

    config: WorldConfig
    users: pd.DataFrame
    truth: pd.DataFrame
    jobs: pd.DataFrame
    consent: pd.DataFrame
    exclusions: pd.DataFrame
    labels: pd.DataFrame


def _task_facts(task: JobTask) -> dict[str, Any]:
    take = asdict(task.take)
    return {
        "job_id": task.job_id,
        "style": task.style,
        "duration_s": task.duration_s,
        "sparse_vocal": task.sparse_vocal,
        "defect": task.defect,
        **{f"take_{key}": value for key, value in take.items()},
        **{f"mix_spec_{key}": value for key, value in asdict(task.mix).items() if key != "tone_db"},
        **{
            f"mix_spec_tone_{band}_db": value
            for band, value in zip(("low", "mid", "high"), task.mix.tone_db, strict=True)
        },
    }


def remove_stale_jobs(audio_root: str, job_ids: list[str]) -> None:
    """Delete job folders under ``<audio_root>/jobs`` that are not in this world."""
    keep = set(job_ids)
    folder = Path(audio_root) / "jobs"
    if folder.is_dir():
        for stale in sorted(path for path in folder.iterdir() if path.name not in keep):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def build_world(config: WorldConfig, audio_root: str) -> World:
    """Users, jobs with their audio files under ``audio_root``, labels, consent and exclusions."""
    users = make_users(config)
    jobs, tasks = plan_jobs(config, users, audio_root)
    remove_stale_jobs(audio_root, jobs["job_id"].tolist())
    rendered = render_jobs(tasks, config.n_workers)
    truth = pd.DataFrame([_task_facts(task) for task in tasks]).merge(rendered, on="job_id")
    truth.insert(1, "user_id", jobs["user_id"].to_numpy())
    truth = label_jobs(config, users, truth)
    jobs = jobs.assign(
        trimmed_inst_path=np.where(
            truth["trimmed_s"] > 0,
            jobs["job_id"].map(lambda j: f"jobs/{j}/inst_trimmed.flac"),
            None,
        )
    )
    consent, exclusions = consent_tables(config, users, jobs)
    exclusions = pd.concat(
        [exclusions, quality_exclusions(config, jobs, truth.set_index("job_id")["defect"])],
        ignore_index=True,
    )
    exclusions = exclusions.sort_values(["created_at", "reason"], kind="stable").reset_index(
        drop=True
    )
    exclusions.insert(
        0, "exclusion_id", [f"X{number:05d}" for number in range(1, len(exclusions) + 1)]
    )
    return World(
        config=config,
        users=users,
        truth=truth,
        jobs=jobs,
        consent=consent,
        exclusions=exclusions,
        labels=labels_table(jobs, truth, config),
    )


def trainable_jobs(world: World) -> pd.Series:
    """Whether each job (``truth`` order) may be trained on: consent granted, not excluded."""
    consenting = set(world.users.loc[world.users["consent_state"] == "granted", "user_id"])
    excluded_users = set(world.exclusions["user_id"].dropna())
    excluded_jobs = set(world.exclusions["job_id"].dropna())
    return (
        world.truth["user_id"].isin(consenting)
        & ~world.truth["user_id"].isin(excluded_users)
        & ~world.truth["job_id"].isin(excluded_jobs)
    )


def summary(world: World) -> dict[str, Any]:
    """Counts and distributions of the world (for the ground truth and the logs)."""
    truth, exclusions = world.truth, world.exclusions
    level = np.where(exclusions["job_id"].notna(), "job", "user")
    labels = {
        name: truth[f"label_{name}"].describe()[["mean", "std", "min", "max"]].round(3).to_dict()
        for name in MASTER_PARAM_NAMES
    }
    return {
        "n_users": len(world.users),
        "n_jobs": len(truth),
        "users_per_consent_state": world.users["consent_state"]
        .value_counts()
        .sort_index()
        .to_dict(),
        "exclusions_per_reason_and_level": (exclusions["reason"] + "/" + level)
        .value_counts()
        .sort_index()
        .to_dict(),
        "jobs_per_style": truth["style"].value_counts().sort_index().to_dict(),
        "defects": truth["defect"].value_counts().sort_index().to_dict(),
        "trimmed_jobs": int((truth["trimmed_s"] > 0).sum()),
        "trainable_jobs": int(trainable_jobs(world).sum()),
        "master_reg_labels": labels,
        "preset_labels": truth["preset_label"].value_counts().sort_index().to_dict(),
        "preset_agreement": float((truth["preset_label"] == truth["style"]).mean()),
        "aligner_failure_rate": float(1.0 - truth["aligned_ok"].mean()),
        "aligner_failure_rate_per_style": (1.0 - truth.groupby("style")["aligned_ok"].mean())
        .round(3)
        .to_dict(),
    }


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and tuples turned into JSON types, recursively."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def ground_truth(world: World, experiments: Mapping[str, Any]) -> dict[str, Any]:
    """Every hidden parameter of the world that is not per user or per job (those are in
    ``world.users`` and ``world.truth``), with the experiments' true effects."""
    return _plain(
        {
            "about": (
                "Hidden parameters of the synthetic MIXAI world (mixai_ml.simulation). Per-user "
                "taste: ground_truth_users.parquet; per-job plan, measurements and labels: "
                "ground_truth_jobs.parquet."
            ),
            "config": world.config.as_json(),
            "presets": {name: dict(style.preset) for name, style in STYLES.items()},
            "style_targets": style_targets(world.truth).round(4).to_dict(orient="index"),
            "user_model": dict(world.config.user_model),
            "neighbour_presets": {name: list(values) for name, values in NEIGHBOURS.items()},
            "align_tolerance_ms": ALIGN_TOLERANCE_MS,
            "experiments": dict(experiments),
            "summary": summary(world),
        }
    )
