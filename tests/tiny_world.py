"""The tiny demo world the slow end-to-end and browser tests share (``tiny_project`` in
``tests/conftest.py``): its configuration, run through every pipeline once per session."""

from __future__ import annotations

FAST_MODEL = {"model": {"fit": {"max_epochs": 60, "patience": 10}}}
TINY = {
    # the tiny world, with enough users that every split of every task has some
    "demo_data": {
        "size": "tiny",
        "n_workers": 2,
        "sizes": {
            "tiny": {"n_users": 40, "n_jobs": 100, "clip_seconds": [3.2, 3.6], "ab_users": 400}
        },
    },
    "features": {"n_workers": 2},
    # 40 jobs of 16 users: larger held-out shares so that every split has users
    # ... and a training reference from their few rows: a 5 % false-alarm rate needs 19
    "training": {
        "min_samples": 10,
        "split": {"test_fraction": 0.3, "validation_fraction": 0.25},
        "reference": {"target_false_alarm_rate": 0.05},
    },
    "master_reg": FAST_MODEL,
    "preset_cls": FAST_MODEL,
    "align_conf": FAST_MODEL,
    # A handful of test users decides nothing: promote whatever trained, so the bundle ships
    # models and the wheel can be tried on them.
    "evaluation": {
        "bootstrap": {"n_resamples": 50},
        "audio": {"max_jobs": 3},
        "ood": {"max_jobs": 4, "n_workers": 2},
        "promotion": {
            "master_reg": {"min_gain_vs_rules": -10.0, "min_gain_vs_active": -10.0},
            "preset_cls": {"min_gain_vs_rules": -10.0, "min_gain_vs_active": -10.0},
            "align_conf": {"min_gain_vs_rules": -10.0, "min_gain_vs_active": -10.0, "max_ece": 1.0},
        },
    },
    "export": {"flags": {"enable_cpu_ml": True}},
}
