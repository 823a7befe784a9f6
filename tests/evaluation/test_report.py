"""The README's results table is generated from ``evaluation_metrics.json`` (``make demo``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mixai_inference.tasks import task_spec
from mixai_ml.evaluation import plots
from mixai_ml.evaluation.report import (
    RESULTS_END,
    RESULTS_START,
    results_table,
    with_results_table,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def metrics(mae: float, loud: float, f1: float, auc: float, ece: float) -> dict[str, object]:
    """An ``evaluation_metrics.json`` with the given model figures; baselines a bit worse."""
    return {
        "master_reg": {
            "model": {"mae_norm": mae},
            "sklearn": {"mae_norm": mae + 0.01},
            "rules": {"mae_norm": 0.2},
            "oracle": {"mae_norm": 0.031},
            "audio_domain": {
                "model": {"loudness_error_lu_mean": loud},
                "rules": {"loudness_error_lu_mean": 4.0},
                "oracle": {"loudness_error_lu_mean": 0.36},
            },
        },
        "preset_cls": {
            "model": {"macro_f1": f1},
            "sklearn": {"macro_f1": 0.6},
            "rules": {"macro_f1": 0.2},
            "oracle": {"macro_f1": 0.79},
        },
        "align_conf": {
            "model": {"roc_auc": auc, "ece": ece},
            "sklearn": {"roc_auc": 0.9, "ece": 0.04},
            "rules": {"roc_auc": 0.8, "ece": None},
            "oracle": {"roc_auc": 1.0, "ece": 0.0},
        },
    }


def test_the_table_shows_each_contender_on_the_primary_metrics() -> None:
    table = results_table(metrics(0.0894, 1.026, 0.7079, 0.98439, 0.0504))
    assert table.splitlines()[2:] == [
        "| `master_reg` `mae_norm` (lower is better) | **0.089** | 0.099 | 0.200 | 0.031 |",
        "| `master_reg` loudness error after mastering (LU) | **1.03** | – | 4.00 | 0.36 |",
        "| `preset_cls` macro-F1 | **0.708** | 0.600 | 0.200 | 0.790 |",
        "| `align_conf` ROC-AUC / ECE | **0.984** / 0.050 | 0.900 / 0.040 | 0.800 / n/a "
        "| 1.000 / 0.000 |",
    ]
    without_truth = metrics(0.0894, 1.026, 0.7079, 0.98439, 0.0504)
    for block in without_truth.values():
        block.pop("oracle")
    assert results_table(without_truth).splitlines()[2].endswith("| 0.200 | – |")


def test_only_the_marked_block_of_the_readme_changes() -> None:
    readme = README.read_text(encoding="utf-8")
    updated = with_results_table(readme, metrics(0.05, 0.5, 0.9, 0.99, 0.01))
    before, after = readme.split(RESULTS_START), updated.split(RESULTS_START)
    assert before[0] == after[0]
    assert before[1].split(RESULTS_END)[1] == after[1].split(RESULTS_END)[1]
    assert "| **0.050** | 0.060 | 0.200 | 0.031 |" in updated
    with pytest.raises(ValueError, match="needs the lines"):
        with_results_table("# no table", metrics(0.05, 0.5, 0.9, 0.99, 0.01))


def test_the_readme_holds_a_generated_table() -> None:
    """The README's block is what the generator writes for the numbers it shows."""
    block = README.read_text(encoding="utf-8").split(RESULTS_START)[1].split(RESULTS_END)[0]
    rows = [
        [float(n) for n in re.findall(r"\d+\.\d+", line)] for line in block.strip().splitlines()[2:]
    ]
    (mae, *_), (loud, *_), (f1, *_), (auc, ece, *_) = rows
    shown = results_table(metrics(mae, loud, f1, auc, ece)).splitlines()
    assert [line.split(" | ")[1] for line in shown[2:]] == [
        line.split(" | ")[1] for line in block.strip().splitlines()[2:]
    ]


def test_the_limit_figure_places_each_contender_in_the_rules_to_oracle_gap() -> None:
    result = {
        "task": "master_reg",
        "status": "succeeded",
        **metrics(0.0894, 1.0, 0.7, 0.98, 0.05)["master_reg"],  # type: ignore[dict-item]
        "multi_task": {"status": "succeeded", "test": {"multi_task": 0.1155}},
    }
    assert "master_reg_limit.png" in plots.figure_names(result)
    figure = plots.limit(task_spec("master_reg"), result)
    labels = [text.get_text() for text in figure.axes[0].texts]
    assert labels == [
        " 0.200 (0 % of the gap)",  # the rules
        " 0.099 (60 % of the gap)",  # sklearn
        " 0.089 (65 % of the gap)",  # (0.2 - 0.0894) / (0.2 - 0.031)
        " 0.116 (50 % of the gap)",  # the multi-task head
        " 0.031 (100 % of the gap)",
    ]
    without_truth = {key: value for key, value in result.items() if key != "oracle"}
    assert "master_reg_limit.png" not in plots.figure_names(without_truth)
