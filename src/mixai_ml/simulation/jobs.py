"""The demo world's jobs: who made which when, and rendering each one's audio.

A job's audio is rendered in a worker process from ``(seed, AUDIO, job index)`` alone, so
the same parameters give identical audio bytes whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from typing import Any

import numpy as np
import pandas as pd

from mixai_inference import estimate_alignment
from mixai_ml.datasets.audio import AudioFolder, from_pcm16, to_pcm16
from mixai_ml.progress import progress
from mixai_ml.simulation.config import AUDIO, DEFECTS, JOBS, WorldConfig, quota, stream
from mixai_ml.simulation.recording import MixSpec, TakeSpec, describe, render_job_audio
from mixai_ml.simulation.styles import STYLES
from mixai_ml.simulation.synth import draw_song_spec, render_song


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
    audio: AudioFolder
    """Where the job's files are written."""


JOBS_FOLDER = "jobs"
"""The folder of the job audio the demo world writes (its own: it is replaced whole)."""


def job_file(job_id: str, name: str) -> str:
    """The path of one of a job's files, relative to the audio folder (as in ``jobs``)."""
    return f"{JOBS_FOLDER}/{job_id}/{name}.flac"


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
    config: WorldConfig, users: pd.DataFrame, audio: AudioFolder
) -> tuple[pd.DataFrame, list[JobTask]]:
    """Who made which job when, in which style, recorded and mixed how.

    Every user has at least one job; the rest follow the users' activity. Job ids are in
    order of creation.

    Returns:
        The ``jobs`` table rows (paths relative to the audio folder, ``trimmed_inst_path``
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
        count = quota(config.defects[defect], n_jobs, 1)
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
                audio=audio,
            )
        )
        rows.append(
            {
                "job_id": job_id,
                "user_id": users["user_id"].iloc[owners[index]],
                "created_at": created[index],
                "vocal_path": job_file(job_id, "vocal"),
                "inst_path": job_file(job_id, "inst"),
                "trimmed_inst_path": None,
                "mix_path": job_file(job_id, "mix"),
            }
        )
    return pd.DataFrame(rows), tasks


def render_job(task: JobTask) -> dict[str, Any]:
    """Render, write and align one job (runs in a worker process).

    Writes ``vocal.flac``, ``inst.flac``, ``inst_trimmed.flac`` (when trimmed) and
    ``mix.flac`` (:func:`job_file`) into the task's audio folder, runs the production aligner on the
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
    files = {"vocal": audio.vocal, "inst": audio.instrumental, "mix": mix}
    if audio.trimmed is not None:
        files["inst_trimmed"] = audio.trimmed
    for name, samples in files.items():
        task.audio.save(job_file(task.job_id, name), samples, sr)
    # the aligner sees exactly what loading the files gives
    reference = audio.instrumental if audio.trimmed is None else audio.trimmed
    alignment = estimate_alignment(
        from_pcm16(to_pcm16(audio.vocal)), from_pcm16(to_pcm16(reference)), sr
    )
    if task.defect == "corrupt_mix":  # an interrupted upload: the file ends mid-stream
        key = job_file(task.job_id, "mix")
        data = task.audio.read_bytes(key)
        task.audio.write_bytes(key, data[: len(data) * 2 // 5])
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


def task_facts(task: JobTask) -> dict[str, Any]:
    """What was planned for a job (style, take, mix, defect), as JSON-ready scalars."""
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
