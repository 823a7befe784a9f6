"""master_reg in the audio domain: render predicted and chosen parameters, compare the audio.

Following DeepAFx-ST (Steinmetz et al., 2022), each test mix is mastered through
the same chain twice, with the predicted and with the user's parameters, and
the two renders are compared by integrated loudness error (LU) and by a
multi-resolution STFT distance (spectral convergence + log-magnitude L1,
averaged over window sizes; Yamamoto et al., 2020).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import stft

from mixai_inference import measure_loudness
from mixai_inference.tasks import MASTER_PARAM_NAMES, MASTER_PARAM_RANGES
from mixai_ml.dsp.mastering import MasteringParams, render_master
from mixai_ml.progress import progress

logger = logging.getLogger(__name__)


def multi_resolution_stft_distance(
    estimate: np.ndarray,
    reference: np.ndarray,
    fft_sizes: Sequence[int] = (512, 1024, 2048),
    eps: float = 1e-7,
) -> float:
    """Spectral convergence plus log-magnitude L1, averaged over window sizes.

    Args:
        estimate, reference: audio ``(channels, samples)`` of equal shape.
        fft_sizes: Hann window lengths; the hop is a quarter of each.
        eps: floor of the magnitudes before the logarithm.

    Returns:
        The distance (0 for identical audio; dimensionless).
    """
    total = 0.0
    for n_fft in fft_sizes:
        _, _, est = stft(estimate, nperseg=n_fft, noverlap=n_fft - n_fft // 4, window="hann")
        _, _, ref = stft(reference, nperseg=n_fft, noverlap=n_fft - n_fft // 4, window="hann")
        est_mag, ref_mag = np.abs(est), np.abs(ref)
        convergence = np.linalg.norm(ref_mag - est_mag) / max(float(np.linalg.norm(ref_mag)), eps)
        log_distance = np.mean(
            np.abs(np.log(np.maximum(ref_mag, eps)) - np.log(np.maximum(est_mag, eps)))
        )
        total += convergence + log_distance
    return float(total / len(fft_sizes))


def _params(row: pd.Series, source: str) -> MasteringParams:
    """The parameters of one contender, clipped to the contract ranges as production does."""
    prefix = f"{source}_" if source else ""
    return MasteringParams(
        **{
            name: float(np.clip(row[f"{prefix}{name}"], low, high))
            for name, (low, high) in MASTER_PARAM_RANGES.items()
        }
    )


def audio_domain_errors(
    predictions: pd.DataFrame,
    mixes: Mapping[str, Callable[[], tuple[np.ndarray, int]]],
    sources: Sequence[str],
) -> pd.DataFrame:
    """Per job and contender: loudness error (LU) and MR-STFT distance to the user's master.

    Args:
        predictions: master_reg test predictions (targets under the parameter
            names, contenders as ``<source>_<parameter>``).
        mixes: ``job_id -> loader`` of the unmastered mix (``() -> (audio, sr)``).
        sources: contenders to render.

    Returns:
        Columns ``job_id``, ``source``, ``loudness_error_lu``, ``mrstft``.
    """
    rows = []
    jobs = predictions[predictions["job_id"].isin(mixes)]
    for _, row in progress(jobs.iterrows(), total=len(jobs), desc="rendering masters"):
        audio, sr = mixes[row["job_id"]]()
        reference = render_master(audio, sr, _params(row, ""))
        reference_lufs = measure_loudness(reference, sr)["integrated_lufs"]
        for source in sources:
            if f"{source}_{MASTER_PARAM_NAMES[0]}" not in row:
                continue
            rendered = render_master(audio, sr, _params(row, source))
            rows.append(
                {
                    "job_id": row["job_id"],
                    "source": source,
                    "loudness_error_lu": abs(
                        measure_loudness(rendered, sr)["integrated_lufs"] - reference_lufs
                    ),
                    "mrstft": multi_resolution_stft_distance(rendered, reference),
                }
            )
    return pd.DataFrame(rows, columns=["job_id", "source", "loudness_error_lu", "mrstft"])


def summarise(errors: pd.DataFrame) -> dict[str, Any]:
    """Mean and median of each audio-domain error per contender."""
    summary: dict[str, Any] = {"n_jobs": int(errors["job_id"].nunique())}
    for source, group in errors.groupby("source"):
        summary[str(source)] = {
            "loudness_error_lu_mean": float(group["loudness_error_lu"].mean()),
            "loudness_error_lu_median": float(group["loudness_error_lu"].median()),
            "mrstft_mean": float(group["mrstft"].mean()),
        }
    return summary
