"""alignment.onnx against ``mixai_inference.alignment.estimate_alignment``: the same offset
on known shifts, the same features within the documented tolerances."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_audio import as_take, music, vocal_pair

from mixai_inference.alignment import ALIGNMENT_FEATURE_NAMES, estimate_alignment
from mixai_ml.edge.parity import ALIGNMENT_FAMILIES, FeatureGraphs, outside_tolerance


def _compare(graphs: FeatureGraphs, vocal: np.ndarray, instrumental: np.ndarray, sr: int) -> float:
    features, offset = graphs.alignment(vocal, instrumental, sr)
    reference = estimate_alignment(vocal, instrumental, sr)
    assert offset == pytest.approx(reference.offset_ms, abs=0.01)
    assert features[0] == pytest.approx(offset)
    misses = outside_tolerance(
        features, reference.features, ALIGNMENT_FAMILIES, ALIGNMENT_FEATURE_NAMES
    )
    assert misses == []
    return offset


@pytest.mark.parametrize("sr", [16000, 44100, 48000])
@pytest.mark.parametrize("offset_ms", [0.0, 37.0, -480.0, 1234.0])
def test_known_shift(graphs: FeatureGraphs, offset_ms: float, sr: int) -> None:
    vocal, instrumental = vocal_pair(sr, 20.0, offset_ms, seed=1)
    assert _compare(graphs, vocal, instrumental, sr) == pytest.approx(offset_ms, abs=3.0)


def test_bleed_is_found_by_gcc_phat(graphs: FeatureGraphs) -> None:
    sr = 44100
    instrumental = music(sr, 12.0, bpm=97.0, seed=12)
    voice, _ = vocal_pair(sr, 12.0, 0.0, seed=13, bpm=71.0)
    take = as_take(voice + 10 ** (-30 / 20) * instrumental.mean(axis=0), 730.0, sr)
    assert _compare(graphs, take, instrumental, sr) == pytest.approx(730.0, abs=0.1)
    features, _ = graphs.alignment(take, instrumental, sr)
    assert features[ALIGNMENT_FEATURE_NAMES.index("gcc_phat_used")] == 1.0


def test_stereo_stems_and_a_silent_vocal(graphs: FeatureGraphs) -> None:
    sr = 48000
    vocal, instrumental = vocal_pair(sr, 8.0, 420.0, seed=8)
    _compare(graphs, vocal, np.stack([instrumental, 0.8 * instrumental]), sr)
    silent = np.zeros((2, 6 * sr), dtype=np.float32)
    assert _compare(graphs, silent, instrumental, sr) == 0.0
