"""Evaluation figures (matplotlib, object-oriented: no global pyplot state)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from mixai_inference.tasks import MASTER_PARAM_RANGES, MASTER_REG, PRESET_CLS, PRESETS
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


def parameter_errors(predictions: pd.DataFrame) -> Figure:
    """master_reg: normalised absolute error per parameter for each contender (box plots)."""
    outputs = contender_outputs(predictions, MASTER_REG)
    targets = truth(predictions, MASTER_REG)
    spans = np.array([high - low for low, high in MASTER_PARAM_RANGES.values()])
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
    axes.set_xticks(np.arange(len(spans)), list(MASTER_PARAM_RANGES), rotation=20)
    axes.set(ylabel="|error| / parameter range", title="master_reg: test error per parameter")
    axes.legend()
    return figure


def confusion_matrix(result: dict[str, Any], source: str = "model") -> Figure:
    """preset_cls: the confusion matrix of one contender, row-normalised."""
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
    axes.set_xticks(range(len(PRESETS)), PRESETS, rotation=35, ha="right")
    axes.set_yticks(range(len(PRESETS)), PRESETS)
    axes.set(
        xlabel="predicted",
        ylabel="chosen by the user",
        title=f"preset_cls ({source}): macro-F1 {result[source]['macro_f1']:.3f}",
    )
    figure.colorbar(image, ax=axes, label="share of the row")
    return figure


def reliability_diagram(result: dict[str, Any], predictions: pd.DataFrame) -> Figure:
    """align_conf: reliability diagram and ROC curve of each contender."""
    outputs = contender_outputs(predictions, "align_conf")
    outcomes = truth(predictions, "align_conf")
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
        xlabel="predicted probability the alignment is right",
        ylabel="observed frequency",
        title="align_conf: reliability",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    roc.plot([0, 1], [0, 1], "k:")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="align_conf: ROC")
    reliability.legend(loc="upper left")
    roc.legend(loc="lower right")
    return figure


def task_figures(
    result: dict[str, Any], predictions: pd.DataFrame, history: dict[str, Any] | None
) -> dict[str, Figure]:
    """Every figure of one task's evaluation, keyed by PNG file name."""
    task = result["task"]
    figures = {}
    if history:
        figures[f"{task}_learning_curve.png"] = learning_curve(history, f"{task}: learning curve")
    if task == MASTER_REG and "model" in result:
        figures[f"{task}_parameter_errors.png"] = parameter_errors(predictions)
    elif task == PRESET_CLS and "model" in result:
        figures[f"{task}_confusion_matrix.png"] = confusion_matrix(result)
    elif "model" in result:
        figures[f"{task}_reliability.png"] = reliability_diagram(result, predictions)
    return figures
