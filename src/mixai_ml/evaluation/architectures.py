"""A task's two candidates side by side: its own network and its multi-task head."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mixai_inference.tasks import task_spec
from mixai_ml.evaluation.bootstrap import paired_bootstrap
from mixai_ml.evaluation.metrics import primary_metric_function
from mixai_ml.training.artifact import TrainedTask
from mixai_ml.training.data import arrays
from mixai_ml.training.models import predict


def compare_architectures(
    single: TrainedTask,
    multi: TrainedTask,
    chosen: TrainedTask,
    model_input: pd.DataFrame,
    bootstrap: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``multi_task`` block: both candidates on the test users, with the paired bootstrap
    CI of multi-task minus single-task on the primary metric, and which one the validation
    split chose (:func:`mixai_ml.training.runs.choose_candidate`).

    Returns:
        ``{"multi_task": {...}}``; its ``status`` says ``skipped`` (with the reason) when
        either candidate did not train.
    """
    if single.model is None or multi.model is None:
        reason = single.reason if single.model is None else multi.reason
        return {"multi_task": {"status": "skipped", "reason": reason}}
    spec = task_spec(single.task)
    inputs, targets = arrays(model_input, single.task, "test")
    if not len(inputs):
        return {"multi_task": {"status": "skipped", "reason": "no test users"}}
    targets = targets.astype(np.float64)
    outputs = {}
    for name, model in (("single_task", single.model), ("multi_task", multi.model)):
        values = predict(model, inputs).astype(np.float64)
        outputs[name] = values[:, 0] if spec.kind == "probability" else values
    metric = primary_metric_function(spec)
    users = model_input.loc[model_input["split"] == "test", "user_id"].astype(str).to_numpy()
    interval = paired_bootstrap(
        targets,
        outputs["multi_task"],
        outputs["single_task"],
        metric,
        groups=users,
        **bootstrap,
    )
    architectures = chosen.info.get("architectures", {})
    return {
        "multi_task": {
            "status": "succeeded",
            "chosen": architectures.get("chosen", "single_task"),
            "trunk": multi.info.get("trunk"),
            "shared_with": multi.info.get("shared_with", []),
            "versions": {"single_task": single.version, "multi_task": multi.version},
            "validation": architectures.get("validation", {}),
            "test": {name: metric(targets, values) for name, values in outputs.items()},
            "diff": interval["difference"],
            "diff_ci_low": interval["ci_low"],
            "diff_ci_high": interval["ci_high"],
        }
    }
