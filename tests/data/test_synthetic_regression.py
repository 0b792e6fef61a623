"""synthetic_regression: vectors, real-valued targets with shared structure, one low-data task."""

import pytest
import torch
from omegaconf import OmegaConf

from mtlrun.data import load_data
from mtlrun.errors import ConfigError
from mtlrun.parts import DATASETS


def raw(**fields):
    node = {"name": "synthetic_regression", **fields}
    return DATASETS.build("synthetic_regression", node, "dataset")


def test_vectors_and_one_real_valued_target_per_task():
    data = load_data(
        OmegaConf.create(
            {
                "name": "synthetic_regression",
                "n_train": 300,
                "n_test": 100,
                "val_size": 50,
                "input_dim": 12,
                "num_tasks": 3,
            }
        ),
        torch.device("cpu"),
        seed=0,
    )
    assert data.info.input_shape == (12,) and not data.info.is_image
    assert data.train.inputs.shape == (250, 12) and data.test.inputs.shape == (100, 12)
    assert list(data.info.targets) == ["y0", "y1", "y2"]
    assert all(t.dim == 1 and not t.is_class for t in data.info.targets.values())
    assert all(y.shape == (250,) and y.dtype == torch.float32 for y in data.train.targets.values())


def test_only_the_last_task_is_short_of_training_labels():
    data = raw(n_train=500, low_data_examples=15)
    observed = {name: int((~y.isnan()).sum()) for name, y in data.train.targets.items()}
    assert observed == {"y0": 500, "y1": 500, "y2": 500, "y3": 15}
    assert not any(y.isnan().any() for y in data.test.targets.values())  # tested on every example


def test_targets_share_a_low_dimensional_structure_plus_noise():
    data = raw(n_test=4000, input_dim=20, latent_dim=2, num_tasks=5, noise=0.1)
    x, y = data.test.inputs, torch.stack(list(data.test.targets.values()), dim=1)
    coefficients = torch.linalg.lstsq(x, y).solution  # D × T
    singular = torch.linalg.svdvals(coefficients)
    assert singular[1] > 0.5 and singular[2] < 0.05  # rank 2: the tasks share 2 directions
    residual = y - x @ coefficients
    assert torch.allclose(residual.std(0), torch.full((5,), 0.1), atol=0.01)  # each task's noise
    assert torch.allclose(y.var(0), torch.full((5,), 1.01), atol=0.15)  # unit signal variance


def test_the_data_is_seeded():
    assert torch.equal(raw().train.inputs, raw().train.inputs)
    assert not torch.equal(raw().train.targets["y0"], raw(seed=1).train.targets["y0"])


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"latent_dim": 40}, "dataset.latent_dim=40"),
        ({"num_tasks": 0}, "dataset.num_tasks=0"),
        ({"low_data_examples": 5000}, "dataset.low_data_examples=5000"),
    ],
)
def test_impossible_settings_are_config_errors(fields, words):
    with pytest.raises(ConfigError, match=words):
        raw(**fields)


def test_with_input_noise_the_inputs_lie_near_the_subspace_the_targets_read():
    data = raw(n_train=4000, input_dim=16, latent_dim=2, input_noise=0.1)
    x = data.train.inputs
    # The top-2 principal directions hold all but the noise: the rest has variance σ² = 0.01.
    residual = torch.linalg.svdvals(x - x.mean(0))[2:] ** 2 / (len(x) - 1)
    assert torch.allclose(residual, torch.full_like(residual, 0.01), rtol=0.2)
    isotropic = torch.linalg.svdvals(raw(n_train=4000, input_dim=16, latent_dim=2).train.inputs)
    assert (isotropic[2:] ** 2 / 3999).min() > 0.5  # without it, every direction has variance 1
    with pytest.raises(ConfigError, match="dataset.input_noise=-1.0 must be at least 0"):
        raw(input_noise=-1.0)
