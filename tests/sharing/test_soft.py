"""Soft sharing: per-task networks pulled together by the parameter-distance penalty."""

import torch

from mtlrun.checkpoint import load_checkpoint
from mtlrun.experiment import build
from mtlrun.lifecycle import train
from tests.conftest import compose_config
from tests.sharing import SMALL, assert_learns, config_error

TASKS = "+task@tasks.class=classification"


def trained_distance(run_dir, penalty):
    """The tied layers' distance after a short run with `penalty`, and before it."""
    cfg = compose_config([*SMALL, TASKS, "sharing=soft", f"sharing.penalty={penalty}"])
    model = build(cfg).model
    before = model.parameter_distance().item()
    train(cfg, run_dir)
    model.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"])
    return model.parameter_distance().item(), before


def test_a_larger_penalty_pulls_the_networks_closer(tmp_path):
    (tmp_path / "free").mkdir()
    (tmp_path / "tied").mkdir()
    free, before = trained_distance(tmp_path / "free", 0.0)
    tied, same_start = trained_distance(tmp_path / "tied", 0.01)
    assert before == same_start  # same seed, same initial networks
    assert tied < 0.5 * before < 0.5 * free  # without the penalty the networks drift apart
    assert_learns(tmp_path / "tied")


def test_the_penalty_is_the_weighted_distance_of_the_tied_layers_only():
    cfg = compose_config([*SMALL, TASKS, "sharing=soft", "sharing.shared_layers=1"])
    model = build(cfg).model
    recon, cls = model.networks["reconstruction"], model.networks["class"]
    assert recon.blocks[0] is not cls.blocks[0]  # each task has its own network
    expected = sum(
        (a - b).pow(2).sum()
        for a, b in zip(recon.blocks[0].parameters(), cls.blocks[0].parameters(), strict=True)
    )
    assert torch.allclose(model.parameter_distance(), expected)
    assert torch.allclose(model.sharing_penalty(), 0.01 * expected)  # the default penalty


def test_bad_values_are_config_errors():
    soft = [*SMALL, TASKS, "sharing=soft"]
    assert "sharing.penalty=-1.0 must be at least 0" in config_error([*soft, "sharing.penalty=-1"])
    assert "choose 0 to 2" in config_error([*soft, "sharing.shared_layers=5"])


def test_tied_layers_are_not_shared():
    model = build(compose_config([*SMALL, TASKS, "sharing=soft"])).model
    assert model.last_shared_parameters() == [] and not model.shares_representation
