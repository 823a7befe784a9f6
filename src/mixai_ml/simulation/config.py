"""The demo world's parameters and random streams, shared by its modules.

The world is a pure function of its parameters (``conf/base/parameters_demo_data.yml``).
Every random draw comes from a generator seeded by ``(seed, stream)`` and, for a job's
audio, ``(seed, stream, job index)``; every timestamp is relative to ``world_end``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from mixai_ml.parameters import settings_section

CONSENT_STATES: Final = ("granted", "never_asked", "refused", "withdrawn")
DEFECTS: Final = ("corrupt_mix", "silent_vocal", "clipped_mix")
DESCRIPTORS: Final = ("low_db", "mid_db", "high_db", "crest_db", "side_db")

# Independent random streams: (seed, stream[, index]).
USERS, JOBS, LABELS, EXCLUSIONS, ONLINE, EXPERIMENTS, AUDIO = 1, 2, 3, 4, 5, 6, 100


def stream(seed: int, *keys: int) -> np.random.Generator:
    """The random generator of ``(seed, *keys)``: independent of every other key."""
    return np.random.default_rng([seed, *keys])


def quota(share: float, total: int, minimum: int) -> int:
    """``share`` of ``total``, rounded, at least ``minimum`` and at most ``total``."""
    return min(total, max(minimum, round(share * total)))


def compact_json(value: Mapping[str, Any]) -> str:
    """``value`` as JSON text without spaces (label and prediction columns)."""
    return json.dumps(value, separators=(",", ":"))


_REQUIRED_KEYS: Final = (
    "seed",
    "size",
    "sizes",
    "sample_rate",
    "world_end",
    "history_days",
    "consent",
    "exclusions",
    "defects",
    "takes",
    "mixes",
    "user_model",
    "online",
    "ab_baseline",
    "experiments",
    # the run-time control at world_end (pipelines.demo_data.nodes.run_time_control)
    "feature_flags",
    "running_experiments",
)
"""The keys of the ``demo_data`` parameters (``n_workers`` may be left out)."""


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
            ValueError: on a missing or unknown key, an unknown size, consent shares that do
                not sum to 1, or too few users or jobs for every consent state.
        """
        params = settings_section(
            params, "demo_data", required=_REQUIRED_KEYS, optional=("n_workers",)
        )
        sizes = params["sizes"]
        if params["size"] not in sizes:
            raise ValueError(f"demo_data.size {params['size']!r} is not one of {sorted(sizes)}")
        size = settings_section(
            sizes[params["size"]],
            f"demo_data.sizes.{params['size']}",
            required=("n_users", "n_jobs", "clip_seconds", "ab_users"),
        )
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
