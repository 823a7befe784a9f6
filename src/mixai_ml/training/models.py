"""PyTorch models of the tasks.

One small architecture serves every task: standardisation of the inputs (inside
the model, so the ONNX export carries it), an MLP, and a task head that turns
logits into what production consumes (label units, class probabilities or a
calibrated probability). Training works on :meth:`TabularNet.logits`; serving
uses :meth:`TabularNet.forward`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Final, Literal

import numpy as np
import torch
from torch import nn

Head = Literal["regression", "softmax", "sigmoid"]

HEAD_OF_KIND: Final[dict[str, Head]] = {
    "regression": "regression",
    "classification": "softmax",
    "probability": "sigmoid",
}
"""The network head of each task kind (:attr:`mixai_inference.tasks.TaskSpec.kind`)."""
NET_KEYS: Final = ("hidden", "dropout", "seed")
"""The keys of a ``net`` parameter section: the hidden layers' widths, the dropout and the
seed of the initial weights."""


@dataclass(frozen=True)
class NetConfig:
    """Shape of a :class:`TabularNet` (saved with the weights)."""

    n_inputs: int
    n_outputs: int
    head: Head
    hidden: tuple[int, ...]
    dropout: float

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "hidden": list(self.hidden)}


@dataclass
class Scaling:
    """Per-column mean and scale (zero-variance columns get scale 1)."""

    mean: np.ndarray
    scale: np.ndarray = field(repr=False)

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaling:
        mean = values.mean(axis=0)
        scale = values.std(axis=0)
        return cls(mean.astype(np.float32), np.where(scale > 1e-8, scale, 1.0).astype(np.float32))


class TabularNet(nn.Module):
    """MLP over standardised features with a task head.

    Input: ``features`` float32 ``(batch, n_inputs)``. Output of :meth:`forward`:
    ``(batch, n_outputs)``; regression in label units, softmax probabilities, or
    a sigmoid probability with Platt calibration (``slope * logit + intercept``).
    """

    input_mean: torch.Tensor
    input_scale: torch.Tensor
    target_mean: torch.Tensor
    target_scale: torch.Tensor
    calibration: torch.Tensor

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("input_mean", torch.zeros(config.n_inputs))
        self.register_buffer("input_scale", torch.ones(config.n_inputs))
        self.register_buffer("target_mean", torch.zeros(config.n_outputs))
        self.register_buffer("target_scale", torch.ones(config.n_outputs))
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))
        layers: list[nn.Module] = []
        width = config.n_inputs
        for hidden in config.hidden:
            layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, config.n_outputs))
        self.body = nn.Sequential(*layers)

    def set_input_scaling(self, scaling: Scaling) -> None:
        self.input_mean.copy_(torch.from_numpy(scaling.mean))
        self.input_scale.copy_(torch.from_numpy(scaling.scale))

    def set_target_scaling(self, scaling: Scaling) -> None:
        self.target_mean.copy_(torch.from_numpy(scaling.mean))
        self.target_scale.copy_(torch.from_numpy(scaling.scale))

    def set_calibration(self, slope: float, intercept: float) -> None:
        self.calibration.copy_(torch.tensor([slope, intercept]))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Pre-head outputs: standardised targets, class logits or an uncalibrated logit."""
        return self.body((features - self.input_mean) / self.input_scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.logits(features)
        if self.config.head == "regression":
            return logits * self.target_scale + self.target_mean
        if self.config.head == "softmax":
            return torch.softmax(logits, dim=-1)
        return torch.sigmoid(logits * self.calibration[0] + self.calibration[1])


def predict(model: TabularNet, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Run :meth:`TabularNet.forward` in evaluation mode on a float32 array."""
    model.eval()
    outputs: list[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(features[start : start + batch_size]))
            outputs.append(model(batch).numpy())
    if not outputs:
        return np.zeros((0, model.config.n_outputs), dtype=np.float32)
    return np.concatenate(outputs).astype(np.float32)
