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

COLOURS = {
    "model": "tab:blue",
    "sklearn": "tab:orange",
    "rules": "tab:grey",
    "active": "tab:green",
    "oracle": "black",
    "population": "tab:blue",
    "personalized": "tab:red",
    "scratch": "tab:blue",
    "transfer": "tab:purple",
}


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


def personalization(spec: TaskSpec, result: Mapping[str, Any]) -> Figure:
    """The primary metric by the user's number of prior jobs: population model, personalised
    (with the bootstrap CI of the difference carried onto it) and oracle."""
    buckets = result["personalized"]
    labels = list(buckets)
    positions = np.arange(len(labels))
    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    axes = figure.subplots()
    population = np.array([buckets[label]["population"] for label in labels], dtype=float)
    personal = np.array([buckets[label]["model"] for label in labels], dtype=float)
    low = population + np.array([buckets[label]["diff_ci_low"] for label in labels], dtype=float)
    high = population + np.array([buckets[label]["diff_ci_high"] for label in labels], dtype=float)
    axes.plot(positions, population, "o-", color=COLOURS["population"], label="population model")
    axes.errorbar(
        positions,
        personal,
        yerr=[np.clip(personal - low, 0, None), np.clip(high - personal, 0, None)],
        fmt="s-",
        capsize=4,
        color=COLOURS["personalized"],
        label="personalised (95 % CI of the gain)",
    )
    if all("oracle" in buckets[label] for label in labels):
        oracle = [buckets[label]["oracle"] for label in labels]
        axes.plot(positions, oracle, "k:", marker="^", label="oracle (the limit)")
    counts = [f"{label}\n({buckets[label]['n']} jobs)" for label in labels]
    axes.set_xticks(positions, counts)
    axes.set(
        xlabel="the user's prior jobs",
        ylabel=spec.primary_metric,
        title=f"{spec.name}: per-user adapters by history (test users)",
    )
    axes.legend()
    return figure


def label_efficiency(spec: TaskSpec, result: Mapping[str, Any]) -> Figure:
    """Learning curves: the primary metric by labelled jobs, from scratch and with transfer
    (95 % CIs of each against the rules, carried onto its curve), and the rules."""
    curve = result["learning_curve"]
    sizes = np.array([entry["n_labels"] for entry in curve])
    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    axes = figure.subplots()
    rules = np.array([entry["rules"] for entry in curve], dtype=float)
    axes.plot(sizes, rules, "--", color=COLOURS["rules"], label="rules")
    for variant in ("scratch", "transfer"):
        values = np.array([entry[variant] for entry in curve], dtype=float)
        versus = [entry[f"{variant}_vs_rules"] for entry in curve]
        low = rules + np.array([interval["ci_low"] for interval in versus], dtype=float)
        high = rules + np.array([interval["ci_high"] for interval in versus], dtype=float)
        axes.plot(sizes, values, "o-", color=COLOURS[variant], label=variant)
        axes.fill_between(sizes, low, high, color=COLOURS[variant], alpha=0.15)
    if "oracle" in result:
        axes.axhline(
            result["oracle"][spec.primary_metric], color="k", linestyle=":", label="oracle"
        )
    axes.set(
        xscale="log",
        xlabel="labelled jobs (train + validation)",
        ylabel=spec.primary_metric,
        title=f"{spec.name}: learning curves on the test users",
    )
    axes.legend()
    return figure


def limit(spec: TaskSpec, result: Mapping[str, Any]) -> Figure:
    """Each contender's primary metric between the rules and the oracle (the limit), with
    its share of that gap closed; the multi-task head's test score when there is one."""
    metric = spec.primary_metric
    scores = {
        source: float(result[source][metric])
        for source in ("rules", "sklearn", "model", "active")
        if source in result
    }
    multi = result.get("multi_task", {})
    if multi.get("status") == "succeeded":
        scores["multi-task head"] = float(multi["test"]["multi_task"])
    rules, oracle = scores["rules"], float(result["oracle"][metric])
    figure = Figure(figsize=(7.5, 0.8 + 0.5 * (len(scores) + 1)), layout="constrained")
    axes = figure.subplots()
    names = [*scores, "oracle"]
    values = [*scores.values(), oracle]
    colours = [COLOURS.get(name, "tab:cyan") for name in names]
    positions = np.arange(len(names))
    axes.barh(positions, values, color=colours)
    for position, value in zip(positions, values, strict=True):
        share = f"{round(100 * (value - rules) / (oracle - rules))} %" if oracle != rules else "n/a"
        axes.annotate(
            f" {value:.3f} ({share} of the gap)",
            (value, position),
            va="center",
            fontsize=8,
        )
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    axes.margins(x=0.35)
    better = "lower" if not spec.higher_is_better else "higher"
    axes.set(
        xlabel=f"{metric} ({better} is better)",
        title=f"{spec.name}: from the rules to the oracle (test users)",
    )
    return figure


_KIND_FIGURE = {
    "regression": "parameter_errors",
    "classification": "confusion_matrix",
    "probability": "reliability",
}
"""The figure of a trained model's test results, by task kind."""


def figure_names(result: Mapping[str, Any]) -> list[str]:
    """The PNG file names of one task's evaluation figures (see :func:`task_figures`):
    the learning curve of a trained model, the figure of its kind, and those of its oracle,
    personalisation and label-efficiency blocks when it has them."""
    task = result["task"]
    names = [f"{task}_learning_curve.png"] if result["status"] == "succeeded" else []
    if "model" in result:
        names.append(f"{task}_{_KIND_FIGURE[task_spec(task).kind]}.png")
    if result.get("ood", {}).get("status") == "evaluated":
        names.append(f"{task}_ood_guard.png")
    if "oracle" in result and "rules" in result:
        names.append(f"{task}_limit.png")
    if result.get("personalized"):
        names.append(f"{task}_personalization.png")
    if result.get("learning_curve"):
        names.append(f"{task}_label_efficiency.png")
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
        "limit": lambda: limit(spec, result),
        "personalization": lambda: personalization(spec, result),
        "label_efficiency": lambda: label_efficiency(spec, result),
    }
    prefix = f"{spec.name}_"
    return {
        name: draw[name.removeprefix(prefix).removesuffix(".png")]()
        for name in figure_names(result)
    }
