"""Known shifts of held-out audio: what the out-of-distribution guard is evaluated on.

A shift is a mapping with a ``kind`` and its parameters (``conf/base/parameters_evaluation.yml``):

* ``gain``: the level changes by ``db`` (a quieter recording chain);
* ``lowpass``: an 8th-order Butterworth low-pass at ``hz`` (a lossy codec, a cheap microphone);
* ``noise``: white noise at ``snr_db`` below the signal's RMS (a noisy room or converter);
* ``rate``: the audio was recorded at ``recorded_hz`` but is read as ``read_hz`` (a client
  that declares the wrong sample rate: pitch and tempo change by ``read_hz / recorded_hz``);
* ``genre``: no change to the audio; only held-out jobs whose preset label is in ``presets``
  (a different genre mix than the training data: each input in distribution, the
  population not).

``gain``, ``rate`` and ``genre`` keep the mastering and preset labels: the mastering chain
sets the loudness first, and a misread rate changes what the model sees, not the song. The
alignment label is recomputed under every shift from the true offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from scipy.signal import butter, sosfilt

from mixai_inference.audio import resample
from mixai_ml.features.extraction import AudioLoader

PARAMETERS: Final = {
    "gain": ("db",),
    "lowpass": ("hz",),
    "noise": ("snr_db",),
    "rate": ("recorded_hz", "read_hz"),
    "genre": ("presets",),
}
"""Each kind of shift and its parameters."""
LABEL_PRESERVING: Final = frozenset({"gain", "rate", "genre"})
"""Kinds under which a job's mastering and preset labels still hold."""


def check_shifts(shifts: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise a ``ValueError`` naming the first shift with an unknown kind or a missing
    parameter."""
    for name, shift in shifts.items():
        needed = PARAMETERS.get(str(shift.get("kind")))
        if needed is None or any(key not in shift for key in needed):
            raise ValueError(
                f"evaluation.ood.shifts.{name}: needs a kind of {list(PARAMETERS)} and its "
                f"parameters {list(needed or ())}, got {dict(shift)}"
            )


def apply_shift(
    audio: np.ndarray, sr: int, shift: Mapping[str, Any], seed: int
) -> tuple[np.ndarray, int]:
    """``audio (channels, samples)`` at ``sr`` under an audio ``shift``, and its sample rate
    as read. ``seed`` fixes the added noise."""
    kind = shift["kind"]
    if kind == "gain":
        return (audio * 10.0 ** (float(shift["db"]) / 20.0)).astype(np.float32), sr
    if kind == "lowpass":
        sos = butter(8, float(shift["hz"]), fs=sr, output="sos")
        return sosfilt(sos, audio, axis=-1).astype(np.float32), sr
    if kind == "noise":
        rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
        scale = rms * 10.0 ** (-float(shift["snr_db"]) / 20.0)
        noise = np.random.default_rng(seed).standard_normal(audio.shape) * scale
        return (audio + noise).astype(np.float32), sr
    if kind == "rate":
        recorded = int(shift["recorded_hz"])
        stretched = np.stack([resample(channel, sr, recorded) for channel in audio])
        return stretched.astype(np.float32), int(shift["read_hz"])
    return audio, sr


def time_factor(shift: Mapping[str, Any]) -> float:
    """Seconds of recording per second as read: an offset measured under ``shift``, times
    this, is an offset in the recording."""
    if shift["kind"] != "rate":
        return 1.0
    return float(shift["read_hz"]) / float(shift["recorded_hz"])


@dataclass(frozen=True)
class ShiftedAudio:
    """A lazy loader of one file under a shift (picklable, for worker processes)."""

    load: AudioLoader
    shift: Mapping[str, Any]
    seed: int

    def __call__(self) -> tuple[np.ndarray, int]:
        audio, sr = self.load()
        return apply_shift(np.atleast_2d(audio), sr, self.shift, self.seed)
