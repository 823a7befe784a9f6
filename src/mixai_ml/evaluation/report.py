"""The evaluation report (Markdown beside its PNG figures) and the metrics file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mixai_inference.tasks import task_names, task_spec

CONTENDERS = ("model", "sklearn", "rules", "active", "oracle")
HEADLINE = {
    "regression": ("mae_norm",),
    "classification": ("macro_f1", "accuracy", "top2_accuracy"),
    "probability": ("roc_auc", "pr_auc", "brier", "ece", "ece_noise_floor"),
}
"""Metrics shown in the report's summary table, by task kind."""


def metrics_file(
    evaluations: Mapping[str, Mapping[str, Any]], audio: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """``evaluation_metrics.json``: per task the contenders' metric blocks, and its
    ``audio_domain`` block when the task has one (docs/data_contracts.md §7)."""
    content: dict[str, Any] = {}
    for task, result in evaluations.items():
        block = dict(result)
        if audio.get(task):
            block["audio_domain"] = dict(audio[task])
        content[task] = block
    return content


def _fmt(value: Any, spec: str = ".4f") -> str:
    """A number in ``spec``; ``n/a`` where a metric is undefined (``None``)."""
    if value is None:
        return "n/a"
    return format(value, spec) if isinstance(value, int | float) else str(value)


def _summary_table(task: str, result: Mapping[str, Any]) -> list[str]:
    present = [source for source in CONTENDERS if source in result]
    columns = list(HEADLINE[task_spec(task).kind])
    gap = result.get("gap_closed", {})
    header = [*columns, "share of the rules→oracle gap"] if gap else columns
    lines = [f"| contender | {' | '.join(header)} |", f"|---|{'---|' * len(header)}"]
    for source in present:
        cells = [_fmt(result[source][c]) for c in columns]
        if gap:
            share = gap.get(source)
            cells.append({"rules": "0 %", "oracle": "100 %"}.get(source, _fmt_share(share)))
        lines.append(f"| {source} | {' | '.join(cells)} |")
    return lines


def _fmt_share(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


def _ci(block: Mapping[str, Any], prefix: str = "diff") -> str:
    """``+0.0123 (95% CI -0.0100 … +0.0300)`` of a difference and its interval."""
    return (
        f"{_fmt(block[prefix], '+.4f')} (95% CI {_fmt(block[f'{prefix}_ci_low'], '+.4f')} … "
        f"{_fmt(block[f'{prefix}_ci_high'], '+.4f')})"
    )


def _multi_task_lines(result: Mapping[str, Any]) -> list[str]:
    block = result["multi_task"]
    if block.get("status") != "succeeded":
        return [f"Multi-task head: not trained ({block.get('reason', '')}).", ""]
    metric = result["primary_metric"]
    test = block["test"]
    return [
        f"Multi-task head (trunk `{block['trunk']}`, shared with "
        f"{', '.join(f'`{task}`' for task in block['shared_with'])}): test {metric} "
        f"{_fmt(test['multi_task'])} against {_fmt(test['single_task'])} for the task's own "
        f"network; multi − single {_ci(block)}, paired bootstrap over users. The validation "
        f"split chose the **{block['chosen'].replace('_', '-')}** network as the candidate.",
        "",
    ]


def _personalization_lines(result: Mapping[str, Any]) -> list[str]:
    metric = result["primary_metric"]
    lines = [
        f"Per-user adapters on {metric}: each test job answered with the adapter of the "
        "user's earlier jobs (as production would), by the number of those jobs:",
        "",
        "| prior jobs | jobs | users | population | personalised | oracle | "
        "personalised − population |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, block in result["personalized"].items():
        lines.append(
            f"| {label} | {block['n']} | {block['n_users']} | {_fmt(block['population'])} | "
            f"{_fmt(block['model'])} | {_fmt(block.get('oracle'))} | {_ci(block)} |"
        )
    summary = result.get("personalization", {})
    returning = summary.get("returning")
    if returning:
        lines += [
            "",
            f"Jobs of users with {summary['returning_from']} or more prior jobs "
            f"({returning['n']} jobs, {returning['n_users']} users): personalised "
            f"{_fmt(returning['model'])} against {_fmt(returning['population'])}, "
            f"difference {_ci(returning)}.",
        ]
    return [*lines, ""]


def _learning_curve_lines(result: Mapping[str, Any]) -> list[str]:
    lines = [
        f"Learning curves ({result['label_efficiency']['repeats']} draws per size; transfer: "
        f"pre-trained on {result['label_efficiency']['pretrain']}, then fine-tuned):",
        "",
        "| labelled jobs | scratch | transfer | rules | transfer − scratch | "
        "scratch − rules | transfer − rules |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in result["learning_curve"]:
        versus = [
            _ci({"diff": v["difference"], "diff_ci_low": v["ci_low"], "diff_ci_high": v["ci_high"]})
            for v in (entry["scratch_vs_rules"], entry["transfer_vs_rules"])
        ]
        lines.append(
            f"| {entry['n_labels']} | {_fmt(entry['scratch'])} | {_fmt(entry['transfer'])} | "
            f"{_fmt(entry['rules'])} | {_ci(entry)} | {versus[0]} | {versus[1]} |"
        )
    recommended = result["label_efficiency"]["recommended"]
    lines.append("")
    for variant, value in recommended.items():
        lines.append(
            f"- {variant}: beats the rules reliably from "
            f"{value['n_labels'] or 'no tested number of'} labelled jobs; "
            f"`ML_MIN_SAMPLES` ≥ {value['min_samples'] or 'n/a'}."
        )
    return [*lines, ""]


def recommended_min_samples(evaluations: Mapping[str, Mapping[str, Any]]) -> int | None:
    """The ``ML_MIN_SAMPLES`` every task's curve supports from scratch (the largest of the
    tasks' recommendations; ``None`` when some trained task never beats the rules reliably)."""
    values = [
        result["label_efficiency"]["recommended"]["scratch"]["min_samples"]
        for result in evaluations.values()
        if result.get("label_efficiency")
    ]
    if not values or any(value is None for value in values):
        return None
    return int(max(values))


def _per_parameter_table(task: str, result: Mapping[str, Any]) -> list[str]:
    present = [source for source in CONTENDERS if source in result]
    header = " | ".join(f"{source} MAE | {source} R²" for source in present)
    lines = [f"| parameter | {header} |", f"|---|{'---|' * 2 * len(present)}"]
    for name in task_spec(task).outputs:
        scores = [result[source]["per_parameter"][name] for source in present]
        cells = " | ".join(
            f"{_fmt(score['mae'], '.3f')} | {_fmt(score['r2'], '.3f')}" for score in scores
        )
        lines.append(f"| {name} | {cells} |")
    return lines


def _audio_table(audio: Mapping[str, Any]) -> list[str]:
    lines = [
        "Audio domain (rendered through the mastering chain, "
        f"{audio['n_jobs']} test mixes; DeepAFx-ST's best reported: 1.1 LU):",
        "",
        "| contender | loudness error (LU, mean) | median | MR-STFT distance |",
        "|---|---|---|---|",
    ]
    for source in CONTENDERS:
        if source in audio:
            values = audio[source]
            lines.append(
                f"| {source} | {_fmt(values['loudness_error_lu_mean'], '.2f')} | "
                f"{_fmt(values['loudness_error_lu_median'], '.2f')} | "
                f"{_fmt(values['mrstft_mean'], '.3f')} |"
            )
    return [*lines, ""]


def _ood_section(task: str, ood: Mapping[str, Any]) -> list[str]:
    """The guard's false alarms, detections per known shift, and errors inside / outside."""
    if ood.get("status") != "evaluated":
        return [
            f"Out-of-distribution guard: not evaluated ({ood.get('reason', 'no reference')}).",
            "",
        ]
    metric = task_spec(task).primary_metric
    lines = [
        f"**Out-of-distribution guard** (threshold calibrated out of fold to "
        f"{ood['target_false_alarm_rate']:.0%} false alarms): "
        f"{_fmt(ood['false_alarm_rate'], '.1%')} of the {ood['n_held_out']} held-out jobs flagged.",
        "",
        "| known shift | jobs | flagged | input drift (max PSI) | most drifted features |",
        "|---|---|---|---|---|",
    ]
    for name, block in ood["shifts"].items():
        top = ", ".join(
            f"`{f['feature']}` {f['psi']:.2f}" for f in block["top_drifting_features"][:3]
        )
        lines.append(
            f"| {name} | {block['n']} | {_fmt(block['detection_rate'], '.0%')} | "
            f"{_fmt(block['input_psi_max'], '.2f')} | {top} |"
        )
    lines += [
        "",
        f"| inputs (labels known) | jobs | model error | rules error | model {metric} "
        f"| rules {metric} |",
        "|---|---|---|---|---|---|",
    ]
    for group, label in (
        ("in_distribution", "passed by the guard"),
        ("out_of_distribution", "flagged"),
    ):
        block = ood["errors"][group]
        model, rules = block.get("model", {}), block.get("rules", {})
        lines.append(
            f"| {label} | {block['n']} | {_fmt(model.get('loss'))} | {_fmt(rules.get('loss'))} | "
            f"{_fmt(model.get(metric))} | {_fmt(rules.get(metric))} |"
        )
    return [*lines, ""]


def markdown_report(
    evaluations: Mapping[str, Mapping[str, Any]],
    decisions: Mapping[str, Mapping[str, Any]],
    audio: Mapping[str, Mapping[str, Any]],
    figures: Mapping[str, list[str]],
) -> str:
    """The human-readable evaluation report.

    Args:
        evaluations: task -> :func:`mixai_ml.evaluation.evaluate.evaluate_task` result.
        decisions: task -> promotion decision (``Decision.to_dict()``).
        audio: task -> its audio-domain summary (tasks without one are absent or empty).
        figures: task -> PNG file names, relative to the report.
    """
    lines = [
        "# Evaluation report",
        "",
        "Held-out users only (test users are chosen by a hash of the user id). "
        "Contenders: the new PyTorch model, the scikit-learn baseline, the production "
        "rules (the fallback of `mixai_inference`), the active model when there is one, and, "
        "in the demo world, the oracle that knows the world's truth: the least error any "
        "model can reach (the Bayes limit).",
        "",
    ]
    minimum = recommended_min_samples(evaluations)
    if minimum is not None:
        lines += [
            f"Recommended `ML_MIN_SAMPLES` from the learning curves: **{minimum}** trainable "
            "jobs (from scratch, every task beating the rules with a CI that excludes zero).",
            "",
        ]
    for task in task_names():
        result = evaluations.get(task)
        if result is None:
            continue
        lines += [f"## {task}", ""]
        if result["status"] != "succeeded":
            lines += [f"Training was **{result['status']}**: {result['reason']}", ""]
        lines += [
            f"Version `{result['version'] or '—'}` · {result['n_test']} test jobs "
            f"from {result['n_test_users']} users.",
            "",
        ]
        lines += [*_summary_table(task, result), ""]
        if task_spec(task).kind == "regression" and "model" in result:
            lines += [*_per_parameter_table(task, result), ""]
        if audio.get(task):
            lines += _audio_table(audio[task])
        if "ood" in result:
            lines += _ood_section(task, result["ood"])
        if result.get("multi_task"):
            lines += _multi_task_lines(result)
        if result.get("personalized"):
            lines += _personalization_lines(result)
        if result.get("learning_curve"):
            lines += _learning_curve_lines(result)
        for name, ci in result.get("bootstrap", {}).items():
            lines.append(
                f"- {name.replace('_', ' ')} on {result['primary_metric']}: "
                f"{_fmt(ci['difference'], '+.4f')} (95% CI {_fmt(ci['ci_low'], '+.4f')} … "
                f"{_fmt(ci['ci_high'], '+.4f')}, paired bootstrap over users)"
            )
        decision = decisions.get(task, {})
        verdict = (
            "**promoted**" if decision.get("promote") else "**not promoted** (stays a candidate)"
        )
        lines += ["", f"Decision: {verdict}."]
        lines += [f"- {reason}" for reason in decision.get("reasons", [])]
        lines += ["", *[f"![{name}]({name})" for name in figures.get(task, [])], ""]
    return "\n".join(lines)


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (strict JSON has neither)."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


RESULTS_START = "<!-- results: generated from evaluation_metrics.json by make demo -->"
RESULTS_END = "<!-- end of results -->"


README_ROWS: dict[str, tuple[tuple[str, str], ...]] = {
    "regression": (("mae_norm", "`mae_norm` (lower is better)"),),
    "classification": (("macro_f1", "macro-F1"),),
    "probability": (("roc_auc", "ROC-AUC"), ("ece", "ECE")),
}
"""The README's figures of a task, by its kind: ``(metric, label)``, shown in one cell."""


def results_table(metrics: Mapping[str, Any]) -> str:
    """The README's results table: models vs scikit-learn vs rules vs the world's oracle on
    the primary metrics (the model's figure in bold), a row per task of the registry (and
    the loudness error after mastering for a task evaluated in the audio domain).

    Args:
        metrics: the content of ``evaluation_metrics.json``.
    """
    sources = ("model", "sklearn", "rules", "oracle")

    def cells(block: Mapping[str, Any], metric: str, spec: str = ".3f") -> list[str]:
        return [_fmt(block[source][metric], spec) if source in block else "–" for source in sources]

    rows = {}
    for task in task_names():
        block = metrics.get(task)
        if block is None:
            continue
        shown = README_ROWS[task_spec(task).kind]
        label = " / ".join(name for _, name in shown)
        figures = zip(*(cells(block, metric) for metric, _ in shown), strict=True)
        rows[f"`{task}` {label}"] = [" / ".join(parts) for parts in figures]
        if "audio_domain" in block:
            rows[f"`{task}` loudness error after mastering (LU)"] = cells(
                block["audio_domain"], "loudness_error_lu_mean", ".2f"
            )
    lines = [
        "| task | model | scikit-learn | rules | oracle (the limit) |",
        "|---|---|---|---|---|",
    ]
    for name, (model, *others) in rows.items():
        bold = " / ".join(
            f"**{part}**" if i == 0 else part for i, part in enumerate(model.split(" / "))
        )
        lines.append(f"| {name} | {bold} | {' | '.join(others)} |")
    return "\n".join(lines)


def with_results_table(readme: str, metrics: Mapping[str, Any]) -> str:
    """``readme`` with the text between :data:`RESULTS_START` and :data:`RESULTS_END` replaced
    by :func:`results_table`.

    Raises:
        ValueError: If the README lacks the markers.
    """
    start, end = readme.find(RESULTS_START), readme.find(RESULTS_END)
    if start < 0 or end < start:
        raise ValueError(f"the README needs the lines {RESULTS_START!r} and {RESULTS_END!r}")
    head = readme[: start + len(RESULTS_START)]
    return f"{head}\n{results_table(metrics)}\n{readme[end:]}"
