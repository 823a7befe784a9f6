"""Training recovers known functions, deterministically; calibration fixes miscalibration."""

from __future__ import annotations

import numpy as np
import torch

from mixai_ml.evaluation.metrics import expected_calibration_error
from mixai_ml.training.models import NetConfig, Scaling, TabularNet, predict
from mixai_ml.training.trainer import FitConfig, calibrate, fit

FAST = FitConfig(
    learning_rate=0.01, weight_decay=1e-4, batch_size=64, max_epochs=200, patience=20, seed=3
)


def regression_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n, 5)).astype(np.float32) * [1, 10, 100, 1, 1]
    targets = np.stack([2 * inputs[:, 0] - 0.1 * inputs[:, 1], 0.01 * inputs[:, 2] + 5], axis=1)
    return inputs.astype(np.float32), targets.astype(np.float32)


def regressor(inputs: np.ndarray, targets: np.ndarray) -> TabularNet:
    torch.manual_seed(0)
    model = TabularNet(NetConfig(5, 2, "regression", hidden=(32,), dropout=0.0))
    model.set_input_scaling(Scaling.fit(inputs))
    model.set_target_scaling(Scaling.fit(targets))
    return model


def test_regression_learns_a_known_function_in_label_units() -> None:
    train, validation, test = (
        regression_data(800, 1),
        regression_data(200, 2),
        regression_data(200, 3),
    )
    model = regressor(*train)
    history = fit(model, train, validation, FAST)
    error = np.abs(predict(model, test[0]) - test[1]).mean(axis=0)
    assert (error < 0.1 * test[1].std(axis=0)).all()
    assert history.validation_loss[history.best_epoch] == min(history.validation_loss)


def test_training_is_deterministic() -> None:
    train, validation = regression_data(300, 1), regression_data(100, 2)
    first, second = regressor(*train), regressor(*train)
    fit(first, train, validation, FAST)
    fit(second, train, validation, FAST)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name


def test_softmax_head_outputs_probabilities() -> None:
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(600, 4)).astype(np.float32)
    classes = (inputs[:, 0] > 0).astype(np.float32) + 2 * (inputs[:, 1] > 0)
    model = TabularNet(NetConfig(4, 6, "softmax", hidden=(16,), dropout=0.0))
    model.set_input_scaling(Scaling.fit(inputs))
    fit(model, (inputs[:400], classes[:400]), (inputs[400:], classes[400:]), FAST)
    probabilities = predict(model, inputs[400:])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities.argmax(axis=1) == classes[400:]).mean() > 0.9


def test_platt_calibration_repairs_an_overconfident_logit() -> None:
    rng = np.random.default_rng(5)
    signal = rng.normal(size=(4000, 1)).astype(np.float32)
    outcomes = (rng.random(4000) < 1 / (1 + np.exp(-signal[:, 0]))).astype(np.float32)
    model = TabularNet(NetConfig(1, 1, "sigmoid", hidden=(), dropout=0.0))
    with torch.no_grad():  # logit = 4 * signal: four times too confident
        model.body[0].weight.fill_(4.0)
        model.body[0].bias.fill_(0.0)
    before = expected_calibration_error(outcomes[2000:], predict(model, signal[2000:])[:, 0])
    slope, intercept = calibrate(model, signal[:2000], outcomes[:2000])
    after = expected_calibration_error(outcomes[2000:], predict(model, signal[2000:])[:, 0])
    assert abs(slope - 0.25) < 0.04
    assert abs(intercept) < 0.1
    assert after < 0.03 < before
