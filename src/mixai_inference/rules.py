"""Rule-based estimators of the three tasks: production's fallback and training's baseline.

Generic, style-agnostic mastering heuristics on a few named features. Each input is
looked up by name (never by position), a non-finite value is replaced by the input's
typical value, and every input is clipped to a plausible range first, so any input
gives a finite answer inside the contract ranges (docs/data_contracts.md §3).

``master_reg``
    * ``target_lufs``: −14 LUFS (the common streaming normalisation level), lowered by
      0.25 dB per LU of loudness range above 8 LU so dynamic material is not squashed.
    * EQ gains: move each band half-way towards a fixed reference balance,
      ``gain = −0.5 · (band − reference)``, where ``band`` is the band's energy relative
      to the whole mix (dB; ``band_energy_{low,mid,high}_db``, split at 250 Hz and 4 kHz):
      the 100 Hz low shelf from the low band, the 2.5 kHz peak from the mid band, the
      8 kHz high shelf from the high band. The reference balance (−3, −4, −14 dB) is a
      typical finished mix: most power below 4 kHz, a few per cent above.
    * ``comp_threshold_db``: integrated loudness + half the crest factor − 2 dB: a few
      dB under the programme's peaks, whatever its level.
    * ``comp_ratio``: 1.5 + 0.25 per LU of loudness range above 4 LU + 0.1 per dB of
      crest factor above 12 dB: more dynamic material gets more control.
    * ``limiter_ceiling_dbtp``: −1 dBTP (EBU R128 / AES TD1008 headroom for lossy codecs).
    * ``stereo_width``: ``1 + 0.6 · (correlation − 0.6)``: a near-mono mix (correlation
      near 1) is widened a little, a phasey one (low or negative) narrowed.

``preset_cls``
    Softmax of linear scores of four standardised descriptors: brightness
    (``log2(centroid / 2 kHz)``), tempo (``(bpm − 110) / 20``), dynamics
    (``(LRA − 7) / 3``) and punch (``(crest − 12 dB) / 3``); ``natural`` has a constant
    score, the reference for the others. Not the level: the rules see the unmastered
    upload, whose loudness says how it was recorded, not its style.

``align_conf``
    A logistic of the cross-correlation's peak-to-sidelobe ratio (``psr``, the peak in
    standard deviations of the sidelobes) and of the share of segments aligned alone that
    agree with the global offset: ``1 / (1 + exp(−((psr − 10) / 2 + 4 · (agreement − 0.5))))``.
    Unrelated stems give ``psr`` ≈ 4–6 with little agreement (≈ 2 %), clean matching stems
    ``psr`` > 20 with full agreement (≈ 100 %).

All estimators work on batches ``(n, n_features)`` (training evaluates thousands at
once); the ``*_from_features`` functions are the one-vector conveniences.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from mixai_inference.tasks import MASTER_PARAM_NAMES, MASTER_PARAM_RANGES, PRESETS


@dataclass(frozen=True)
class RuleInput:
    """A feature a rule reads: its name, typical value and plausible range."""

    name: str
    typical: float
    """Replaces a non-finite value."""
    low: float
    high: float


TRACK_INPUTS: Final = {
    "lufs": RuleInput("loudness_integrated_lufs", -14.0, -70.0, 0.0),
    "lra": RuleInput("loudness_range_lu", 7.0, 0.0, 40.0),
    "crest": RuleInput("crest_factor_db", 12.0, 0.0, 40.0),
    "centroid": RuleInput("spectral_centroid_mean", 2000.0, 50.0, 16000.0),
    "tempo": RuleInput("tempo_bpm", 110.0, 30.0, 300.0),
    "correlation": RuleInput("stereo_correlation_mean", 0.6, -1.0, 1.0),
    "band_low": RuleInput("band_energy_low_db", -3.0, -60.0, 0.0),
    "band_mid": RuleInput("band_energy_mid_db", -4.0, -60.0, 0.0),
    "band_high": RuleInput("band_energy_high_db", -14.0, -80.0, 0.0),
}
"""Role → feature of the mix read by the ``master_reg`` and ``preset_cls`` rules.

The ``typical`` values of the band energies are the reference balance the EQ rule
corrects towards."""

ALIGN_INPUTS: Final = {
    "psr": RuleInput("xcorr_peak_to_sidelobe_ratio", 10.0, 0.0, 1000.0),
    "agreement": RuleInput("segment_agreement_ratio", 0.5, 0.0, 1.0),
}
"""Role → alignment feature read by the ``align_conf`` rule."""

TARGET_LUFS: Final = -14.0
CEILING_DBTP: Final = -1.0

_EQ_BANDS: Final = (
    ("eq_low_gain_db", "band_low"),
    ("eq_mid_gain_db", "band_mid"),
    ("eq_high_gain_db", "band_high"),
)

# Preset scores: bias and weights of (brightness, tempo, dynamics, punch).
_PRESET_RULES: Final = {
    "natural": (0.5, (0.0, 0.0, 0.0, 0.0)),  # the balanced default
    "bright_pop": (-0.3, (1.5, 0.3, -0.3, 0.0)),  # bright, mid-fast
    "warm_ballad": (-0.6, (-1.5, -1.0, 0.5, 0.0)),  # dark, slow, dynamic
    "punchy_rock": (-0.4, (0.3, 0.8, -0.2, 0.8)),  # fast, strong transients
    "loud_edm": (-0.8, (0.5, 0.8, -1.5, -0.8)),  # dense (small range, low crest), fast
    "soft_acoustic": (-0.6, (-0.5, -0.8, 1.2, 0.0)),  # dynamic, slow
}
_PRESET_BIAS: Final = np.array([_PRESET_RULES[p][0] for p in PRESETS])
_PRESET_WEIGHTS: Final = np.array([_PRESET_RULES[p][1] for p in PRESETS])

_P: Final = {name: i for i, name in enumerate(MASTER_PARAM_NAMES)}
_LOWS: Final = np.array([low for low, _ in MASTER_PARAM_RANGES.values()])
_HIGHS: Final = np.array([high for _, high in MASTER_PARAM_RANGES.values()])


class _Reader:
    """Reads named inputs out of feature rows: cleaned ``(n, k)`` columns by role."""

    def __init__(self, names: Sequence[str], inputs: Mapping[str, RuleInput], what: str):
        position = {name: i for i, name in enumerate(names)}
        missing = [spec.name for spec in inputs.values() if spec.name not in position]
        if missing:
            raise ValueError(f"the rules need {what} {missing}, which are not among the names")
        self.width = len(names)
        self.what = what
        self.roles = {role: k for k, role in enumerate(inputs)}
        self.index = np.array([position[spec.name] for spec in inputs.values()])
        self.typical = np.array([spec.typical for spec in inputs.values()])
        self.low = np.array([spec.low for spec in inputs.values()])
        self.high = np.array([spec.high for spec in inputs.values()])

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        values = np.asarray(rows, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.width:
            raise ValueError(f"{self.what} must have shape (n, {self.width}), got {np.shape(rows)}")
        picked = values[:, self.index]
        picked = np.where(np.isfinite(picked), picked, self.typical)
        return np.clip(picked, self.low, self.high)


class Rules:
    """The rule-based estimators, bound to the feature names they read.

    Args:
        feature_names: Names of the mix's feature vector (``FEATURE_NAMES``).
        alignment_feature_names: Names of the alignment features
            (``ALIGNMENT_FEATURE_NAMES``).

    Raises:
        ValueError: If a name the rules read (:data:`TRACK_INPUTS`,
            :data:`ALIGN_INPUTS`) is missing.
    """

    def __init__(self, feature_names: Sequence[str], alignment_feature_names: Sequence[str]):
        self.feature_names = tuple(feature_names)
        self.alignment_feature_names = tuple(alignment_feature_names)
        self._track = _Reader(self.feature_names, TRACK_INPUTS, "features")
        self._align = _Reader(self.alignment_feature_names, ALIGN_INPUTS, "alignment features")

    def source_names(self, source: str) -> tuple[str, ...]:
        """The names of a source vector: ``mix`` (the features) or ``alignment``."""
        return self.alignment_feature_names if source == "alignment" else self.feature_names

    @staticmethod
    def default() -> Rules:
        """The rules over the package's ``FEATURE_NAMES`` and ``ALIGNMENT_FEATURE_NAMES``."""
        return _default_rules()

    def master_params(self, features: np.ndarray) -> np.ndarray:
        """Mastering parameters of each row.

        Args:
            features: ``(n, len(feature_names))`` feature rows.

        Returns:
            ``(n, 8)`` float64 in ``MASTER_PARAM_NAMES`` order and label units, inside
            ``MASTER_PARAM_RANGES``.
        """
        x = self._track(features)
        col = self._track.roles
        lufs, lra, crest = x[:, col["lufs"]], x[:, col["lra"]], x[:, col["crest"]]
        out = np.empty((x.shape[0], len(MASTER_PARAM_NAMES)))
        out[:, _P["target_lufs"]] = TARGET_LUFS - 0.25 * np.maximum(lra - 8.0, 0.0)
        for name, role in _EQ_BANDS:
            k = col[role]
            out[:, _P[name]] = -0.5 * (x[:, k] - self._track.typical[k])
        out[:, _P["comp_threshold_db"]] = lufs + 0.5 * crest - 2.0
        out[:, _P["comp_ratio"]] = (
            1.5 + 0.25 * np.maximum(lra - 4.0, 0.0) + 0.1 * np.maximum(crest - 12.0, 0.0)
        )
        out[:, _P["limiter_ceiling_dbtp"]] = CEILING_DBTP
        out[:, _P["stereo_width"]] = 1.0 + 0.6 * (x[:, col["correlation"]] - 0.6)
        return np.clip(out, _LOWS, _HIGHS)

    def preset_scores(self, features: np.ndarray) -> np.ndarray:
        """Preset probabilities of each row: ``(n, 6)`` in ``PRESETS`` order, rows sum to 1."""
        x = self._track(features)
        col = self._track.roles
        descriptors = np.column_stack(
            [
                np.log2(x[:, col["centroid"]] / 2000.0),
                (x[:, col["tempo"]] - 110.0) / 20.0,
                (x[:, col["lra"]] - 7.0) / 3.0,
                (x[:, col["crest"]] - 12.0) / 3.0,
            ]
        )
        logits = descriptors @ _PRESET_WEIGHTS.T + _PRESET_BIAS
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def align_confidence(self, align_features: np.ndarray) -> np.ndarray:
        """Probability that each alignment is right: ``(n,)`` in (0, 1).

        Args:
            align_features: ``(n, len(alignment_feature_names))`` rows.
        """
        x = self._align(align_features)
        col = self._align.roles
        logit = (x[:, col["psr"]] - 10.0) / 2.0 + 4.0 * (x[:, col["agreement"]] - 0.5)
        return 1.0 / (1.0 + np.exp(-logit))


@functools.cache
def _default_rules() -> Rules:
    from mixai_inference.alignment import ALIGNMENT_FEATURE_NAMES
    from mixai_inference.features import FEATURE_NAMES

    return Rules(FEATURE_NAMES, ALIGNMENT_FEATURE_NAMES)


def master_params_from_features(features: np.ndarray) -> dict[str, float]:
    """Mastering parameters of one feature vector (``len(FEATURE_NAMES)``), by name."""
    row = Rules.default().master_params(np.reshape(features, (1, -1)))[0]
    return dict(zip(MASTER_PARAM_NAMES, row.tolist(), strict=True))


def preset_scores_from_features(features: np.ndarray) -> np.ndarray:
    """Preset probabilities ``(6,)`` (``PRESETS`` order) of one feature vector."""
    return Rules.default().preset_scores(np.reshape(features, (1, -1)))[0]


def align_confidence_from_features(align_features: np.ndarray) -> float:
    """Alignment confidence of one alignment feature vector (``len(ALIGNMENT_FEATURE_NAMES)``)."""
    return float(Rules.default().align_confidence(np.reshape(align_features, (1, -1)))[0])


__all__ = [
    "ALIGN_INPUTS",
    "TRACK_INPUTS",
    "RuleInput",
    "Rules",
    "align_confidence_from_features",
    "master_params_from_features",
    "preset_scores_from_features",
]
