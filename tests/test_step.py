"""`train_step`: one step of the loop, returning its detached losses and the example counts the
epoch's means weigh them by, without reading anything back to the host."""

import copy

import torch

from mtlrun.experiment import build
from mtlrun.step import train_step
from tests.conftest import compose_config

# Four regression tasks; y3 has a target on 20 of the training rows only.
REGRESSION = [
    "+experiment=synthetic_regression",
    "dataset.n_train=260",
    "dataset.val_size=0",
    "device=cpu",
    "trainer.batch_size=64",
]


def test_a_step_returns_the_losses_before_it_and_each_tasks_examples():
    experiment = build(compose_config(REGRESSION))
    batch = next(experiment.data.train.batches(64, torch.Generator().manual_seed(0)))
    before = copy.deepcopy(experiment.model.state_dict())
    with torch.no_grad():
        expected = experiment.task_losses(experiment.model(batch.inputs), batch)
    labelled = int((~batch.targets["y3"].isnan()).sum())
    assert 0 < labelled < 64  # the batch has rows without y3

    step = train_step(experiment, batch)

    assert not step.values.requires_grad
    torch.testing.assert_close(step.values[1:], torch.stack(expected))
    weights = torch.tensor([task.weight for task in experiment.loss_tasks])
    torch.testing.assert_close(step.values[0], weights @ torch.stack(expected))  # fixed: Σ w_t L_t
    assert step.counts.tolist() == [64, 64, 64, 64, labelled]
    after = experiment.model.state_dict()
    assert any(not torch.equal(before[key], after[key]) for key in before)  # it stepped


def test_a_step_on_complete_targets_counts_the_batch_once():
    experiment = build(compose_config([*REGRESSION, "dataset.low_data_examples=260"]))
    batch = next(experiment.data.train.batches(64, torch.Generator().manual_seed(0)))
    assert train_step(experiment, batch).counts == 64  # no tensor of counts to build
