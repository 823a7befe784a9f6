"""Golden vectors for the browser tests: reproducible recipes, consistent expectations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mixai_inference import FEATURE_NAMES, extract_features
from mixai_ml.edge.golden import (
    GOLDEN_CLIPS,
    GOLDEN_PAIRS,
    golden_vectors,
    render,
    write_golden_vectors,
    xorshift32,
)
from mixai_ml.edge.parity import FeatureGraphs, outside_tolerance


def test_xorshift32_is_marsaglias() -> None:
    """From seed 1: 1 ^ 1 << 13 = 8193, then >> 17 leaves it, then ^ 8193 << 5 = 270369."""
    first = xorshift32(1, 3)
    assert first[0] == 270369
    state = 270369  # the next step by hand
    state ^= (state << 13) & 0xFFFFFFFF
    state ^= state >> 17
    state ^= (state << 5) & 0xFFFFFFFF
    assert first[1] == state
    with pytest.raises(ValueError, match="seed"):
        xorshift32(0, 1)


def test_recipes_render_their_formulas() -> None:
    sine = render(
        {
            "sr": 8000,
            "duration_s": 1.0,
            "channels": [{"kind": "sine", "freq": 500.0, "amplitude": 0.5}],
        }
    )
    t = np.arange(8000) / 8000
    np.testing.assert_array_equal(sine[0], (0.5 * np.sin(2 * np.pi * 500 * t)).astype(np.float32))
    padded = render(
        {
            "sr": 8000,
            "duration_s": 1.0,
            "channels": [
                {
                    "kind": "padded",
                    "pad_s": 0.5,
                    "inner": {"kind": "noise", "seed": 9, "amplitude": 1.0},
                }
            ],
        }
    )
    assert padded.shape == (1, 16000)
    assert not padded[0, :4000].any()
    assert not padded[0, -4000:].any()
    assert np.abs(padded[0, 4000:12000]).max() <= 1.0
    clicks = render(
        {"sr": 8000, "duration_s": 2.0, "channels": [{"kind": "clicks", "onsets_s": [0.5, 1.25]}]}
    )
    starts = np.flatnonzero(np.abs(clicks[0]) > 0.01)
    assert starts[0] == 4000 + 1  # sin(0) = 0, the burst starts at sample round(0.5 sr)
    assert np.all(clicks[0, 5000:10000] == 0.0)


def test_golden_vectors_match_python(graphs: FeatureGraphs, tmp_path: Path) -> None:
    clip = next(c for c in GOLDEN_CLIPS if c["name"] == "noise-stereo-48k")
    golden = golden_vectors([clip], GOLDEN_PAIRS, graphs)
    assert golden["feature_names"] == list(FEATURE_NAMES)
    row = golden["clips"][0]
    expected = extract_features(render(clip), clip["sr"])
    np.testing.assert_array_equal(np.float32(row["features"]), expected)
    assert outside_tolerance(np.array(row["graph_features"]), expected) == []
    pair = golden["pairs"][0]
    assert pair["offset_ms"] == pytest.approx(pair["true_offset_ms"], abs=1.0)
    assert pair["graph_offset_ms"] == pytest.approx(pair["offset_ms"], abs=0.01)
    names = {t["family"] for t in golden["feature_tolerances"]}
    assert "spectral contrast" in names
    path = write_golden_vectors(
        tmp_path / "golden.json", clips=[clip], pairs=GOLDEN_PAIRS, graphs=graphs
    )
    assert json.loads(path.read_text()) == json.loads(json.dumps(golden))
