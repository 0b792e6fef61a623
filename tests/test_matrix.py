"""The whole method matrix: every weighting × every sharing strategy × each backbone family
trains a few steps on tiny synthetic images, or is refused before training in one line.

The weightings and strategies are read from the registries, so methods added later are covered
without editing this file."""

import copy
import math
from functools import cache
from itertools import islice

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from mtlrun.errors import ConfigError
from mtlrun.experiment import build
from mtlrun.parts import SHARING, WEIGHTINGS
from mtlrun.step import train_step
from tests.conftest import compose_config

BACKBONES = {
    "dense_ae": ["backbone.hidden_dims=[16]", "backbone.latent_dim=4"],
    "vae": ["backbone.hidden_dims=[16]", "backbone.latent_dim=4"],
    "cnn": ["backbone.channels=[4,8]", "backbone.hidden_dims=[16]"],
    "conv_vae": ["backbone.channels=[4,8]", "backbone.hidden_dims=[16]", "backbone.latent_dim=4"],
}
TINY_IMAGES = [
    "dataset=synthetic",
    "dataset.n_train=64",
    "dataset.n_test=16",
    "dataset.val_size=16",
    "dataset.image_size=16",
    "device=cpu",
    "+task@tasks.class=classification",
    "tasks.class.hidden_dims=[8]",
    "tasks.reconstruction.iw_samples=0",
    "trainer.batch_size=16",
    "trainer.epochs=2",
]


def overrides(sharing: str, backbone: str) -> list[str]:
    chosen = [f"sharing={sharing}", f"backbone={backbone}"]
    options = {
        "two_stage": ["sharing.stage1_epochs=1"],  # a step in each stage
        "grouped": ["sharing.groups=[[reconstruction],[class]]"],
    }
    return [*TINY_IMAGES, *chosen, *options.get(sharing, []), *BACKBONES[backbone]]


@cache
def strategy_config(sharing: str, backbone: str) -> DictConfig:
    return compose_config(overrides(sharing, backbone))


@cache
def weighting_node(weighting: str) -> DictConfig:
    return compose_config([f"weighting={weighting}"]).weighting


def combination_config(weighting: str, sharing: str, backbone: str) -> DictConfig:
    """The config `weighting=W sharing=S backbone=B ...` composes to. The weighting group is
    self-contained (its node reads nothing of the others'), so each strategy × backbone and each
    weighting is composed once and put together here: composing all 828 combinations took most
    of this file's time."""
    config = copy.deepcopy(strategy_config(sharing, backbone))
    config.weighting = weighting_node(weighting)
    return config


def steps(experiment, epoch: int, count: int = 2) -> list[torch.Tensor]:
    """`count` training steps of `epoch`, each the loop's `train_step`; the gradients of the
    last one stay in `.grad`. Returns each step's total loss."""
    model = experiment.model
    model.begin_epoch(epoch)
    model.train()
    batches = experiment.data.train.batches(16, torch.Generator().manual_seed(epoch))
    return [train_step(experiment, batch).values[0] for batch in islice(batches, count)]


def untrained_heads(experiment) -> set[int]:
    """The parameters of the heads whose task is not trained in the current stage."""
    model = experiment.model
    return {
        id(p)
        for task in experiment.loss_tasks
        if not model.trains(task.name)
        for p in model.head(task.name).parameters()
    }


@pytest.mark.parametrize("weighting", WEIGHTINGS.names)
def test_a_combination_is_the_config_hydra_composes(weighting):
    composed = compose_config([*overrides("grouped", "cnn"), f"weighting={weighting}"])
    combined = combination_config(weighting, "grouped", "cnn")
    assert OmegaConf.to_yaml(combined) == OmegaConf.to_yaml(composed)
    assert OmegaConf.get_type(combined.weighting) is OmegaConf.get_type(composed.weighting)


# MMoE mixes codes, which a VAE's samples cannot be; MTAN attends over a conv trunk's maps.
BACKBONE_REFUSALS = {
    ("mmoe", "vae"),
    ("mmoe", "conv_vae"),
    ("mtan", "dense_ae"),
    ("mtan", "vae"),
    ("mtan", "mlp"),
    ("mtan", "conv_vae"),
}


def in_the_fast_tier(weighting: str, sharing: str, backbone: str) -> bool:
    """`make test` trains every strategy on every backbone with equal weights, and every
    weighting with hard sharing on a dense and a convolutional backbone; the full tier every
    combination."""
    return weighting == "equal" or (sharing == "hard" and backbone in ("dense_ae", "cnn"))


COMBINATIONS = [
    pytest.param(
        weighting,
        sharing,
        backbone,
        marks=() if in_the_fast_tier(weighting, sharing, backbone) else pytest.mark.slow,
    )
    for weighting in WEIGHTINGS.names
    for sharing in SHARING.names
    for backbone in BACKBONES
]


@pytest.mark.parametrize(("weighting", "sharing", "backbone"), COMBINATIONS)
def test_every_combination_trains_or_is_refused_in_one_line(weighting, sharing, backbone):
    try:
        experiment = build(combination_config(weighting, sharing, backbone))
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message, message
        if message.startswith(f"sharing={sharing} "):  # a strategy for some backbones only
            assert (sharing, backbone) in BACKBONE_REFUSALS, message
            return
        assert f"weighting={weighting}" in message, message
        assert WEIGHTINGS.get(weighting).needs_shared_representation
        return
    epochs = [1, 2] if sharing == "two_stage" else [1]
    for epoch in epochs:
        totals = steps(experiment, epoch)
        assert all(math.isfinite(total.item()) for total in totals)
        untrained = untrained_heads(experiment)
        parameters = [*experiment.model.named_parameters()]
        if sum(experiment.model.trains(t.name) for t in experiment.loss_tasks) > 1:
            # Learnt task weights have something to balance only while two tasks train.
            parameters += experiment.weighting.named_parameters()
        for name, p in parameters:
            if not p.requires_grad or id(p) in untrained:  # frozen, or its task not trained now
                assert p.grad is None, f"epoch {epoch}: {name} got a gradient"
            else:
                assert p.grad is not None, f"epoch {epoch}: {name} got no gradient"
                assert torch.isfinite(p.grad).all(), f"epoch {epoch}: {name}'s gradient"
