"""What happens to a song between the studio and MIXAI: the uploads and the amateur mix.

* The **vocal upload** is a mono take recorded against the instrumental: the dry voice
  (optionally in a reverberant room), bleed of the instrumental from loudspeakers or
  headphones (or none), a noise floor and sometimes mains hum, sometimes edited down to
  the sung phrases, starting earlier or later than the instrumental.
* The **instrumental upload** is the song's instrumental, sometimes preceded by digital
  silence. The app trims leading silence (samples that are 0 in 16-bit PCM, when they
  last at least 10 ms) and then aligns the vocal against the *trimmed* file, so the true
  offset of a trimmed job is ``recording offset - trimmed duration``: trimming creates
  long, mostly negative offsets.
* The **mix** is the instrumental plus the aligned vocal, as an amateur leaves it: its
  tone (low shelf / mid peak / high shelf gains), dynamics (too punchy, or squashed),
  stereo width and level deviate from the style.

Offsets follow the app's convention: ``offset_ms > 0`` means the vocal file must be
delayed by ``offset_ms`` to line up with the instrumental.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.fft import rfft, rfftfreq
from scipy.ndimage import uniform_filter1d
from scipy.signal import butter, lfilter, oaconvolve, sosfilt

from mixai_ml.dsp.mastering import apply_eq, compress, db_to_gain, set_stereo_width
from mixai_ml.simulation.synth import Song

PCM16_ZERO = 0.5 / 32768.0
"""Absolute values up to this are 0 once written as 16-bit PCM: digital silence."""
MIN_TRIM_S = 0.01
"""The app trims leading digital silence only when it lasts at least this long, s."""
_BLEED_HIGHPASS_HZ = 150.0
_LOW_BAND_HZ = 150.0
_MID_BAND_HZ = (1500.0, 4000.0)
_HIGH_BAND_HZ = 6000.0
_FRAME = 8192
"""Frame length of the spectrum behind :func:`describe` (averaged over frames)."""


@dataclass(frozen=True)
class TakeSpec:
    """How the vocal was recorded and the instrumental uploaded.

    Attributes:
        recording_offset_ms: offset of the vocal against the *uploaded* instrumental, ms.
        lead_silence_s: digital silence before the instrumental upload, s (0: none).
        bleed_db: level of the instrumental bleeding into the vocal (loudspeakers or
            headphones), dB re the instrumental, or ``None`` without bleed.
        noise_dbfs: RMS of the take's noise floor, dBFS.
        hum: whether 50 Hz mains hum is in the take.
        gated: whether the take was edited down to the sung phrases (silence between them,
            so the bleed is only heard while singing).
        reverb_s: reverberation time (RT60) of the room, s (0: dry booth).
        peak_dbfs: peak level of the vocal upload, dBFS.
        instrumental_peak_dbfs: peak level of the instrumental upload, dBFS.
    """

    recording_offset_ms: float
    lead_silence_s: float
    bleed_db: float | None
    noise_dbfs: float
    hum: bool
    gated: bool
    reverb_s: float
    peak_dbfs: float
    instrumental_peak_dbfs: float


@dataclass(frozen=True)
class MixSpec:
    """How the amateur mix deviates from the style.

    Attributes:
        vocal_db: vocal level re the instrumental's RMS, dB.
        tone_db: ``(low, mid, high)`` gains of the mastering EQ's bands applied to the mix, dB.
        dynamics: -1 (squashed by bus compression and soft clipping) .. 0 (as arranged) ..
            1 (drums pushed, sections far apart in level).
        width: mid/side width factor applied to the mix.
        rms_dbfs: RMS level of the mix, dBFS (lowered if needed to keep peaks below 0 dBFS).
    """

    vocal_db: float
    tone_db: tuple[float, float, float]
    dynamics: float
    width: float
    rms_dbfs: float


@dataclass(frozen=True)
class JobAudio:
    """The files of one job and the truths behind them.

    Attributes:
        vocal: ``(samples,)`` float32 vocal upload.
        instrumental: ``(2, samples)`` float32 instrumental upload.
        trimmed: ``(2, samples)`` float32 trimmed instrumental, or ``None`` if nothing was trimmed.
        mix: ``(2, samples)`` float32 unmastered mix.
        reference: ``(2, samples)`` float32 the same mix without the amateur's deviations.
        offset_ms: true offset of the vocal upload against the alignment reference
            (the trimmed instrumental when there is one), ms.
        trimmed_s: duration trimmed from the instrumental upload, s.
    """

    vocal: np.ndarray
    instrumental: np.ndarray
    trimmed: np.ndarray | None
    mix: np.ndarray
    reference: np.ndarray
    offset_ms: float
    trimmed_s: float


def _rms(audio: np.ndarray) -> float:
    flat = np.ravel(audio)
    return math.sqrt(float(np.dot(flat, flat)) / max(flat.size, 1))


def _peak(audio: np.ndarray) -> float:
    return max(float(np.max(audio)), -float(np.min(audio)))


def _shift(signal: np.ndarray, samples: int, length: int) -> np.ndarray:
    """``out[t] = signal[t - samples]`` for ``t < length`` (zeros outside ``signal``)."""
    out = np.zeros((*signal.shape[:-1], length), dtype=signal.dtype)
    start, stop = max(samples, 0), min(length, signal.shape[-1] + samples)
    if stop > start:
        out[..., start:stop] = signal[..., start - samples : stop - samples]
    return out


def room_reverb(dry: np.ndarray, rt60_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``dry`` ``(samples,)`` through an exponentially decaying noise impulse response.

    The response (RT60 ``rt60_s``, at most 1.5 s long) is normalised to unit energy and
    mixed with the direct sound at a level that grows with the reverberation time.
    """
    length = int(min(rt60_s, 1.5) * sr)
    decay = np.exp(-6.9 * np.arange(length) / (rt60_s * sr))
    response = rng.standard_normal(length) * decay
    response /= math.sqrt(float(np.sum(response**2)))
    wet = oaconvolve(dry, response)[: dry.size]
    return np.asarray(dry + min(rt60_s, 1.5) * 0.8 * wet, dtype=np.float32)


def colored_noise(samples: int, rms_dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Room-like noise ``(samples,)`` float32 at ``rms_dbfs``: white plus a low-passed share."""
    white = rng.random(samples, dtype=np.float32) - np.float32(0.5)
    noise = (lfilter([0.05], [1.0, -0.95], white) + 0.1 * white).astype(np.float32)
    return np.asarray(noise * np.float32(db_to_gain(rms_dbfs) / _rms(noise)))


def phrase_gate(bounds_s: np.ndarray, samples: int, sr: int, margin_s: float = 0.15) -> np.ndarray:
    """``(samples,)`` float32 gain: 1 from ``margin_s`` before to after each phrase, else 0.

    Edges ramp over 10 ms. ``bounds_s`` is ``(phrases, 2)`` start and end times, s.
    """
    edges = np.zeros(samples + 1, dtype=np.float32)
    starts = np.clip(np.round((bounds_s[:, 0] - margin_s) * sr), 0, samples).astype(np.int64)
    stops = np.clip(np.round((bounds_s[:, 1] + margin_s) * sr), 0, samples).astype(np.int64)
    np.add.at(edges, starts, 1.0)
    np.add.at(edges, stops, -1.0)
    gate = np.minimum(np.cumsum(edges[:samples]), 1.0)
    ramp = max(int(0.01 * sr), 1)
    return np.asarray(np.convolve(gate, np.full(ramp, 1.0 / ramp), mode="same"), dtype=np.float32)


def record_vocal(
    song: Song,
    instrumental: np.ndarray,
    take: TakeSpec,
    song_offset_samples: int,
    sr: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The vocal upload ``(samples,)`` float32.

    Args:
        song: the song (its dry ``vocal`` is in song time).
        instrumental: ``(2, samples)`` the song's instrumental, for the headphone bleed.
        take: the recording conditions.
        song_offset_samples: offset of the take against the song, samples: the file
            must be delayed by it to line up with the song.
        sr: sample rate, Hz.
        rng: random generator (room response, noise).
    """
    samples = song.vocal.size
    voice = room_reverb(song.vocal, take.reverb_s, sr, rng) if take.reverb_s > 0 else song.vocal
    voice = voice / max(_peak(voice), 1e-9)
    if take.bleed_db is not None:
        band = butter(2, _BLEED_HIGHPASS_HZ, btype="highpass", fs=sr, output="sos")
        leak = sosfilt(band, instrumental.mean(axis=0))
        voice = voice + db_to_gain(take.bleed_db) * leak.astype(np.float32)
    upload = _shift(voice.astype(np.float32), -song_offset_samples, samples)
    upload += colored_noise(samples, take.noise_dbfs, rng)
    if take.hum:
        t = np.arange(samples) / sr
        hum = sum((np.sin(2.0 * np.pi * 50.0 * k * t) / k for k in (1, 2, 3)), np.zeros(samples))
        upload += (db_to_gain(take.noise_dbfs + 6.0) * hum).astype(np.float32)
    if take.gated:
        upload *= _shift(
            phrase_gate(song.phrase_bounds_s, samples, sr), -song_offset_samples, samples
        )
    return np.asarray(upload * (db_to_gain(take.peak_dbfs) / _peak(upload)), dtype=np.float32)


def leading_silence(audio: np.ndarray) -> int:
    """Number of leading samples of ``audio`` ``(channels, samples)`` that are digital silence."""
    audible = np.flatnonzero(np.abs(audio).max(axis=0) > PCM16_ZERO)
    return int(audible[0]) if audible.size else audio.shape[-1]


def amateur_mix(
    drums: np.ndarray,
    music: np.ndarray,
    vocal: np.ndarray,
    spec: MixSpec,
    sr: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The unmastered mix of aligned stems, and the same mix without the deviations.

    Args:
        drums, music: ``(2, samples)`` instrumental stems (already at upload level).
        vocal: ``(samples,)`` the vocal upload moved to song time.
        spec: the deviations.
        sr: sample rate, Hz.
        rng: random generator (which sections are loud).

    Returns:
        ``(mix, reference)``, each ``(2, samples)`` float32, peaks below 0 dBFS.
    """
    instrumental = drums + music
    vocal_gain = db_to_gain(spec.vocal_db) * _rms(instrumental) / max(_rms(vocal), 1e-9)
    reference = instrumental + vocal_gain * vocal
    dynamics = spec.dynamics
    mix = music + db_to_gain(6.0 * max(dynamics, 0.0)) * drums + vocal_gain * vocal
    if dynamics > 0:  # 2 s sections alternately up and down a few dB, 0.2 s crossfades
        sections = np.arange(mix.shape[-1] // (2 * sr) + 1)
        section_db = np.where(sections % 2 == 0, -3.0, 3.0) * dynamics * rng.choice([-1.0, 1.0])
        level_db = np.repeat(section_db.astype(np.float32), 2 * sr)[: mix.shape[-1]]
        level_db = uniform_filter1d(level_db, size=int(0.2 * sr), mode="nearest")
        mix = mix * db_to_gain(level_db)
    elif dynamics < 0:  # squashed: a bus compressor, then peaks driven into a soft clipper
        squash = -dynamics  # both vanish as the deviation goes to 0
        threshold_db = 20.0 * math.log10(_peak(mix)) - 3.0 - 6.0 * squash
        mix = compress(mix, sr, threshold_db, 1.0 + 2.0 * squash, attack_ms=5.0, release_ms=80.0)
        drive = 1.5 * squash
        peak = _peak(mix)
        mix = np.tanh(mix * (drive / peak)) * (peak / math.tanh(drive))
    mix = set_stereo_width(apply_eq(mix, sr, *spec.tone_db), spec.width)
    mix = mix * (db_to_gain(spec.rms_dbfs) / _rms(mix))
    mix = mix * min(1.0, db_to_gain(-0.1) / _peak(mix))
    reference = reference * (db_to_gain(-1.0) / _peak(reference))
    return mix.astype(np.float32), reference.astype(np.float32)


def render_job_audio(
    song: Song, take: TakeSpec, mix_spec: MixSpec, sr: int, rng: np.random.Generator
) -> JobAudio:
    """The uploads, the trimmed instrumental and the mix of one job (see module docstring)."""
    gain = db_to_gain(take.instrumental_peak_dbfs) / max(_peak(song.drums + song.music), 1e-9)
    drums, music = song.drums * gain, song.music * gain
    song_instrumental = drums + music
    lead = round(take.lead_silence_s * sr)
    upload = np.concatenate([np.zeros((2, lead), dtype=np.float32), song_instrumental], axis=1)
    trim = leading_silence(upload)
    trim = trim if trim >= MIN_TRIM_S * sr else 0
    # the take was sung against the upload: against the song it starts `lead` later
    song_offset = round(take.recording_offset_ms * sr / 1000.0) - lead
    vocal = record_vocal(song, song_instrumental, take, song_offset, sr, rng)
    aligned_vocal = _shift(vocal, song_offset, vocal.size)
    mix, reference = amateur_mix(drums, music, aligned_vocal, mix_spec, sr, rng)
    return JobAudio(
        vocal=vocal,
        instrumental=upload,
        trimmed=upload[:, trim:] if trim else None,
        mix=mix,
        reference=reference,
        offset_ms=1000.0 * (song_offset - (trim - lead)) / sr,
        trimmed_s=trim / sr,
    )


@dataclass(frozen=True)
class MixDescriptors:
    """What a listener hears of a mix's balance (the hidden user model reacts to these).

    Attributes:
        low_db, mid_db, high_db: power below 150 Hz, in 1.5-4 kHz and above 6 kHz,
            relative to the total, dB (mono downmix).
        crest_db: peak over RMS, dB.
        side_db: side over mid power, dB (within +-60).
        rms_dbfs: RMS level, dBFS.
    """

    low_db: float
    mid_db: float
    high_db: float
    crest_db: float
    side_db: float
    rms_dbfs: float


def describe(audio: np.ndarray, sr: int) -> MixDescriptors:
    """:class:`MixDescriptors` of ``audio`` ``(2, samples)``."""
    mono = audio.mean(axis=0)
    frames = mono[: mono.size // _FRAME * _FRAME].reshape(-1, _FRAME)
    power = np.square(np.abs(rfft(frames * np.hanning(_FRAME).astype(np.float32), axis=1))).sum(
        axis=0
    )
    freqs = rfftfreq(_FRAME, 1.0 / sr)
    total = float(power.sum()) + 1e-30

    def band(mask: np.ndarray) -> float:
        return 10.0 * math.log10(max(float(power[mask].sum()) / total, 1e-12))

    side = (audio[0] - audio[1]) / 2.0
    rms = _rms(audio)
    return MixDescriptors(
        low_db=band(freqs < _LOW_BAND_HZ),
        mid_db=band((freqs >= _MID_BAND_HZ[0]) & (freqs < _MID_BAND_HZ[1])),
        high_db=band(freqs >= _HIGH_BAND_HZ),
        crest_db=20.0 * math.log10(_peak(audio) / max(rms, 1e-12)),
        side_db=min(
            max(20.0 * math.log10(max(_rms(side), 1e-15) / max(_rms(mono), 1e-15)), -60.0), 60.0
        ),
        rms_dbfs=20.0 * math.log10(max(rms, 1e-12)),
    )
