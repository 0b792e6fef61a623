"""Regression: MSE over the observed targets; NaN targets count in neither loss nor metrics."""

import pytest
import torch
from omegaconf import OmegaConf

from mtlrun.backbones import Encoding
from mtlrun.data import Batch, DatasetInfo, TargetInfo
from mtlrun.errors import ConfigError
from mtlrun.parts import BACKBONES
from mtlrun.tasks import build_tasks
from mtlrun.tasks.regression import Regression, RegressionConfig

NAN = float("nan")


def task(name="y", **fields):
    return Regression(RegressionConfig(type="regression", **fields), name)


def batch(targets):
    targets = torch.tensor(targets)
    return Batch(torch.zeros(len(targets), 3), {"y": targets})


def test_missing_targets_are_left_out_of_the_loss_and_its_gradient():
    reg = task()
    prediction = torch.tensor([[1.0], [2.0], [3.0], [4.0]], requires_grad=True)
    data = batch([0.0, NAN, 1.0, NAN])
    loss = reg.loss(prediction, Encoding(prediction, prediction), data)
    assert torch.allclose(loss, torch.tensor((1.0 + 4.0) / 2))  # the mean over 2 observed
    loss.backward()
    assert torch.allclose(prediction.grad, torch.tensor([[1.0], [0.0], [2.0], [0.0]]))


def test_a_batch_without_targets_has_zero_loss_and_zero_gradient():
    prediction = torch.ones(3, 1, requires_grad=True)
    loss = task().loss(prediction, Encoding(prediction, prediction), batch([NAN, NAN, NAN]))
    loss.backward()
    assert loss.item() == 0 and torch.equal(prediction.grad, torch.zeros(3, 1))


def test_metric_sums_cover_the_observed_examples_only():
    reg = task()
    prediction = torch.tensor([[1.0], [2.0], [3.0]])
    data = batch([0.0, NAN, 1.0])
    sums = reg.metric_sums(prediction, Encoding(prediction, prediction), data)
    assert torch.allclose(sums["mse"], torch.tensor(5.0)) and torch.equal(sums["loss"], sums["mse"])
    assert reg.example_count(data) == 2
    assert reg.directions == {"loss": "min", "mse": "min"}


def test_vector_targets_average_over_their_observed_entries():
    reg = task()
    prediction = torch.zeros(2, 2)
    data = Batch(torch.zeros(2, 3), {"y": torch.tensor([[2.0, NAN], [1.0, 3.0]])})
    assert torch.allclose(
        reg.per_example_loss(prediction, Encoding(prediction, prediction), data),
        torch.tensor([4.0, 5.0]),
    )


def test_the_head_predicts_the_targets_dimension_and_bad_targets_are_named():
    info = DatasetInfo("d", (8,), {"y0": TargetInfo(dim=3), "label": TargetInfo(num_classes=4)})
    backbone = BACKBONES.build("mlp", {"name": "mlp", "hidden_dims": [16]}, "backbone", info)
    (reg,) = build_tasks(OmegaConf.create({"y0": {"type": "regression"}}), info, backbone)
    head = reg.build_head(backbone)
    assert head(backbone.encode(torch.rand(5, 8))).shape == (5, 3)
    node = OmegaConf.create({"r": {"type": "regression", "target": "label"}})
    with pytest.raises(ConfigError, match="no real-valued target 'label'; .* are: y0"):
        build_tasks(node, info, backbone)
