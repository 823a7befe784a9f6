"""What a training run leaves for evaluation and export."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mixai_inference.ood import InputReference
from mixai_ml.training.models import TabularNet

Status = Literal["succeeded", "skipped"]


@dataclass
class TrainedTask:
    """A task's trained model and baseline, or the record of why it was skipped.

    Attributes:
        task: the task name.
        status: ``succeeded`` or ``skipped`` (below ``ML_MIN_SAMPLES``).
        version: the model version (empty when skipped).
        reason: why it was skipped, or ``""``.
        input_names: feature names in input order.
        model: the PyTorch model (``None`` when skipped).
        baseline: the fitted scikit-learn baseline (``None`` when skipped).
        info: the run's record: training job id, governance counts, split
            sizes, loss history, calibration, configuration.
        reference: the model's training reference (``None`` when skipped or when
            too few rows).
    """

    task: str
    status: Status
    version: str = ""
    reason: str = ""
    input_names: tuple[str, ...] = ()
    model: TabularNet | None = None
    baseline: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    reference: InputReference | None = None

    @property
    def trained(self) -> bool:
        return self.status == "succeeded" and self.model is not None
