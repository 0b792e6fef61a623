"""Hard sharing: `shared_layers` shares the first blocks and copies the rest per task."""

import pytest
import torch

from mtlrun.checkpoint import load_checkpoint
from mtlrun.experiment import build
from mtlrun.lifecycle import train
from mtlrun.sharing.hard import HardSharing
from tests.conftest import TINY, compose_config
from tests.sharing import SMALL, assert_learns, config_error, same_parameters

TASKS = "+task@tasks.class=classification"


def test_shared_blocks_are_the_same_modules_and_the_rest_are_copies(run_dir):
    cfg = compose_config([*SMALL, TASKS, "sharing.shared_layers=1"])
    model = build(cfg).model
    recon, cls = model.networks["reconstruction"], model.networks["class"]
    assert recon.blocks[0] is cls.blocks[0]
    assert recon.blocks[1] is not cls.blocks[1] and recon.latent is not cls.latent
    # deep copies: the task-specific parts start from the same weights
    assert torch.equal(recon.blocks[1][0].weight, cls.blocks[1][0].weight)
    output = model(torch.rand(5, 1, 28, 28))
    assert [s.shape for s in output.shared] == [(5, 64)]  # the output of the shared block
    assert output.encodings["reconstruction"] is not output.encodings["class"]

    train(cfg, run_dir)
    assert_learns(run_dir)
    weights = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    for key in ["blocks.1.0.weight", "latent.linear.weight"]:
        trained_apart = weights[f"networks.reconstruction.{key}"], weights[f"networks.class.{key}"]
        assert not torch.equal(*trained_apart), key
    shared = weights["networks.reconstruction.blocks.0.1.weight"]
    assert torch.equal(shared, weights["networks.class.blocks.0.1.weight"])


def test_all_blocks_shared_gives_each_task_its_own_latent_layer():
    model = build(compose_config([*SMALL, TASKS, "sharing.shared_layers=2"])).model
    recon, cls = model.networks["reconstruction"], model.networks["class"]
    assert all(a is b for a, b in zip(recon.blocks, cls.blocks, strict=True))
    assert recon.latent is not cls.latent


def test_no_shared_layers_shares_nothing():
    model = build(compose_config([*SMALL, TASKS, "sharing.shared_layers=0"])).model
    assert model(torch.rand(3, 1, 28, 28)).shared == []
    recon, cls = model.networks["reconstruction"], model.networks["class"]
    assert not any(a is b for a, b in zip(recon.blocks, cls.blocks, strict=True))


def test_null_shares_the_whole_encoder():
    model = build(compose_config([*SMALL, TASKS])).model
    assert isinstance(model, HardSharing)
    output = model(torch.rand(3, 1, 28, 28))
    assert output.encodings["reconstruction"] is output.encodings["class"]
    assert [s.shape for s in output.shared] == [(3, 8)]


@pytest.mark.parametrize("k", [3, -1])
def test_shared_layers_out_of_range_lists_the_valid_range(k):
    message = config_error([*SMALL, TASKS, f"sharing.shared_layers={k}"])
    assert f"sharing.shared_layers={k} is out of range" in message
    assert "choose 0 to 2" in message


def test_unknown_key_and_wrong_type_are_config_errors():
    from hydra.errors import ConfigCompositionException

    from mtlrun.config import refused_value

    assert config_error([*SMALL, TASKS, "+sharing.split=1"]) == (
        "sharing.split: Key 'split' not in 'SharedLayersConfig'; its keys: name, "
        "task_relation, shared_layers"
    )
    # The option's schema types the node as it composes: the CLI and mtlrun.train say it so.
    with pytest.raises(ConfigCompositionException) as error:
        compose_config([*SMALL, TASKS, "sharing.shared_layers=all"])
    assert refused_value(error.value) == (
        "sharing.shared_layers: Value 'all' of type 'str' could not be converted to Integer"
    )


def test_the_last_shared_layer_is_the_latent_layer_or_the_last_shared_block():
    autoencoder = build(compose_config([*SMALL, TASKS])).model
    assert same_parameters(
        autoencoder.last_shared_parameters(), autoencoder.backbone.latent.parameters()
    )
    # A classifier trunk's latent layer has no parameters: its last block's Linear it is.
    mlp = build(compose_config([*TINY, "backbone=mlp", "backbone.hidden_dims=[64,32]"])).model
    assert same_parameters(mlp.last_shared_parameters(), mlp.backbone.blocks[1][0].parameters())
    split = build(compose_config([*SMALL, TASKS, "sharing.shared_layers=1"])).model
    flatten_linear = split.networks["class"].blocks[0]
    assert same_parameters(split.last_shared_parameters(), flatten_linear[1].parameters())
    assert split.shares_representation
    none = build(compose_config([*SMALL, TASKS, "sharing.shared_layers=0"])).model
    assert none.last_shared_parameters() == [] and not none.shares_representation
