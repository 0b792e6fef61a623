"""Single-task baselines: nothing is shared between the tasks."""

import torch

from mtlrun.experiment import build
from mtlrun.lifecycle import train
from tests.conftest import compose_config
from tests.sharing import SMALL, assert_learns

SINGLE = [
    *SMALL,
    "+task@tasks.class=classification",
    "+task@tasks.generation=generation",
    "backbone=vae",
    "sharing=single_task",
]


def test_no_parameter_is_shared_between_tasks():
    model = build(compose_config(SINGLE)).model
    assert sorted(model.networks) == ["class", "reconstruction"]  # generation has no loss
    storage = {
        name: {p.data_ptr() for p in [*model.networks[name].parameters(), *head.parameters()]}
        for name, head in model.heads.items()
    }
    assert storage["class"].isdisjoint(storage["reconstruction"])
    output = model(torch.rand(3, 1, 28, 28))
    assert output.shared == []
    # The KL is the reconstruction task's (its ELBO), not a penalty outside the tasks.
    assert output.auxiliary_loss is None


def test_it_trains_and_samples_from_the_prior(run_dir):
    train(compose_config(SINGLE), run_dir)
    assert_learns(run_dir)
    assert (run_dir / "images" / "samples_e003.png").is_file()


def test_nothing_is_a_last_shared_layer():
    model = build(compose_config(SINGLE)).model
    assert model.last_shared_parameters() == [] and not model.shares_representation
