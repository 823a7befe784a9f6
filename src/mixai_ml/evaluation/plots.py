"""Evaluation figures (matplotlib, object-oriented: no global pyplot state)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from mixai_inference.tasks import TaskSpec, task_spec
from mixai_ml.evaluation.predictions import contender_outputs, truth

COLOURS = {"model": "tab:blue", "sklearn": "tab:orange", "rules": "tab:grey", "active": "tab:green"}


def learning_curve(history: dict[str, Any], title: str) -> Figure:
    """Training and validation loss per epoch, with the kept (best) epoch marked."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    axes.plot(history["train_loss"], label="train")
    axes.plot(history["validation_loss"], label="validation")
    axes.axvline(history["best_epoch"], color="k", linestyle=":", label="kept epoch")
    axes.set(xlabel="epoch", ylabel="loss", title=title, yscale="log")
    axes.legend()
    return figure


def parameter_errors(spec: TaskSpec, predictions: pd.DataFrame) -> Figure:
    """A regression: normalised absolute error per output for each contender (box plots)."""
    outputs = contender_outputs(predictions, spec)
    targets = truth(predictions, spec)
    spans = np.array([high - low for low, high in spec.ranges.values()])
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / len(outputs)
    for offset, (source, values) in enumerate(outputs.items()):
        errors = np.abs(values - targets) / spans
        positions = np.arange(len(spans)) + (offset - (len(outputs) - 1) / 2) * width
        boxes = axes.boxplot(
            errors, positions=positions, widths=width * 0.9, patch_artist=True, showfliers=False
        )
        for box in boxes["boxes"]:
            box.set_facecolor(COLOURS[source])
        axes.plot([], [], color=COLOURS[source], linewidth=8, label=source)
    axes.set_xticks(np.arange(len(spans)), list(spec.outputs), rotation=20)
    axes.set(ylabel="|error| / parameter range", title=f"{spec.name}: test error per parameter")
    axes.legend()
    return figure


def confusion_matrix(spec: TaskSpec, result: dict[str, Any], source: str = "model") -> Figure:
    """A classification: the confusion matrix of one contender, row-normalised."""
    matrix = np.asarray(result[source]["confusion_matrix"], dtype=float)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(6.5, 5.5), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(
            column,
            row,
            f"{int(count)}",
            ha="center",
            va="center",
            color="white" if rates[row, column] > 0.5 else "black",
        )
    classes = spec.outputs
    axes.set_xticks(range(len(classes)), classes, rotation=35, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set(
        xlabel="predicted",
        ylabel="chosen by the user",
        title=f"{spec.name} ({source}): macro-F1 {result[source]['macro_f1']:.3f}",
    )
    figure.colorbar(image, ax=axes, label="share of the row")
    return figure


def reliability_diagram(
    spec: TaskSpec, result: dict[str, Any], predictions: pd.DataFrame
) -> Figure:
    """A probability: reliability diagram and ROC curve of each contender."""
    outputs = contender_outputs(predictions, spec)
    outcomes = truth(predictions, spec)
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    reliability, roc = figure.subplots(1, 2)
    reliability.plot([0, 1], [0, 1], "k:", label="perfect calibration")
    for source, probabilities in outputs.items():
        curve = result[source]["reliability"]
        reliability.plot(
            curve["predicted"],
            curve["observed"],
            "o-",
            color=COLOURS[source],
            label=f"{source} (ECE {result[source]['ece']:.3f})",
        )
        if len(np.unique(outcomes)) == 2:
            false_positive, true_positive, _ = roc_curve(outcomes, probabilities)
            roc.plot(
                false_positive,
                true_positive,
                color=COLOURS[source],
                label=f"{source} (AUC {result[source]['roc_auc']:.3f})",
            )
    reliability.set(
        xlabel=f"predicted probability of {spec.label_key}",
        ylabel="observed frequency",
        title=f"{spec.name}: reliability",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    roc.plot([0, 1], [0, 1], "k:")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{spec.name}: ROC")
    reliability.legend(loc="upper left")
    roc.legend(loc="lower right")
    return figure


def ood_guard(spec: TaskSpec, ood: Mapping[str, Any]) -> Figure:
    """The guard on held-out jobs: detection rate per known shift (against the false-alarm
    rate), and the model's and the rules' error inside and outside the guard."""
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    detection, errors = figure.subplots(1, 2)
    shifts = ood["shifts"]
    rates = [100 * (block["detection_rate"] or 0.0) for block in shifts.values()]
    detection.barh(list(shifts), rates, color="tab:purple")
    detection.axvline(
        100 * ood["false_alarm_rate"],
        color="k",
        linestyle=":",
        label=f"false alarms on held-out jobs ({100 * ood['false_alarm_rate']:.1f} %)",
    )
    detection.set(xlabel="flagged (%)", xlim=(0, 100), title=f"{spec.name}: shifts flagged")
    detection.invert_yaxis()
    detection.legend(loc="lower right", fontsize="small")
    groups = ["in_distribution", "out_of_distribution"]
    for offset, source in enumerate(("model", "rules")):
        losses = [ood["errors"][group].get(source, {}).get("loss", np.nan) for group in groups]
        errors.bar(
            np.arange(2) + 0.4 * offset - 0.2, losses, 0.4, color=COLOURS[source], label=source
        )
    counts = [ood["errors"][group]["n"] for group in groups]
    errors.set_xticks(range(2), [f"passed (n={counts[0]})", f"flagged (n={counts[1]})"])
    errors.set(ylabel="mean error per job", title=f"{spec.name}: error inside / outside the guard")
    errors.legend()
    return figure


_KIND_FIGURE = {
    "regression": "parameter_errors",
    "classification": "confusion_matrix",
    "probability": "reliability",
}
"""The figure of a trained model's test results, by task kind."""


def figure_names(result: Mapping[str, Any]) -> list[str]:
    """The PNG file names of one task's evaluation figures (see :func:`task_figures`):
    the learning curve of a trained model, and the figure of its kind."""
    task = result["task"]
    names = [f"{task}_learning_curve.png"] if result["status"] == "succeeded" else []
    if "model" in result:
        names.append(f"{task}_{_KIND_FIGURE[task_spec(task).kind]}.png")
    if result.get("ood", {}).get("status") == "evaluated":
        names.append(f"{task}_ood_guard.png")
    return names


def task_figures(
    result: dict[str, Any], predictions: pd.DataFrame, history: dict[str, Any] | None
) -> dict[str, Figure]:
    """Every figure of one task's evaluation, keyed by :func:`figure_names`."""
    spec = task_spec(result["task"])
    draw = {
        "learning_curve": lambda: learning_curve(history or {}, f"{spec.name}: learning curve"),
        "parameter_errors": lambda: parameter_errors(spec, predictions),
        "confusion_matrix": lambda: confusion_matrix(spec, result),
        "reliability": lambda: reliability_diagram(spec, result, predictions),
        "ood_guard": lambda: ood_guard(spec, result["ood"]),
    }
    prefix = f"{spec.name}_"
    return {
        name: draw[name.removeprefix(prefix).removesuffix(".png")]()
        for name in figure_names(result)
    }
