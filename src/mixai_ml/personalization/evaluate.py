"""The personalisation block of a task's evaluation (see :mod:`.protocol`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from mixai_inference.tasks import task_spec
from mixai_ml.parameters import settings_section
from mixai_ml.personalization.adapters import task_prior
from mixai_ml.personalization.protocol import chronological, evaluate_by_history
from mixai_ml.training.artifact import TrainedTask
from mixai_ml.training.models import predict
from mixai_ml.training.reference import served_outputs


def evaluate_personalization(
    trained: TrainedTask,
    model_input: pd.DataFrame,
    test_predictions: pd.DataFrame,
    jobs: pd.DataFrame,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """Adapters on top of the candidate, fitted and scored as production would.

    Args:
        trained: the task's candidate (the population model).
        model_input: its model input (the prior is fitted on the validation users).
        test_predictions: the test jobs with ``model_<output>`` and maybe ``oracle_<output>``.
        jobs: the ``jobs`` table (``created_at`` orders each user's jobs).
        params: ``evaluation``: ``personalization`` (``buckets``, ``returning_from``) and
            ``bootstrap``.

    Returns:
        ``{"personalized": per bucket, "personalization": summary}``, or ``{}`` when the task
        is not personalised or has no trained model or no test jobs.
    """
    spec = task_spec(trained.task)
    personalization = settings_section(
        params["personalization"],
        "evaluation.personalization",
        required=("buckets", "returning_from"),
    )
    if not spec.personalized or trained.model is None or test_predictions.empty:
        return {}
    inputs = model_input[list(spec.input_names())].to_numpy(dtype="float32")
    prior = task_prior(spec, model_input, served_outputs(spec, predict(trained.model, inputs)))
    test = test_predictions.rename(
        columns={f"model_{name}": f"population_{name}" for name in spec.outputs}
    )
    population = [f"population_{name}" for name in spec.outputs]
    test[population] = served_outputs(spec, test[population].to_numpy(dtype=float))
    frame = chronological(test, jobs.set_index("job_id")["created_at"])
    by_bucket, summary = evaluate_by_history(
        spec, frame, prior, personalization, params["bootstrap"]
    )
    return {"personalized": by_bucket, "personalization": summary}
