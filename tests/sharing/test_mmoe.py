"""MMoE: experts shared by every task, mixed per task by a softmax gate on the input."""

import torch

from mtlrun.experiment import build
from mtlrun.lifecycle import train
from tests.conftest import compose_config
from tests.sharing import SMALL, assert_learns, config_error

TASKS = "+task@tasks.class=classification"


def test_each_task_reads_its_own_gated_mixture_of_the_shared_experts():
    model = build(compose_config([*SMALL, TASKS, "sharing=mmoe", "sharing.num_experts=3"])).model
    x = torch.rand(5, 1, 28, 28)
    output = model(x)
    codes = torch.stack([expert.encode(x).features for expert in model.experts])
    assert [s.shape for s in output.shared] == [(3, 5, 8)]  # experts × batch × code: the cut
    for task in ("reconstruction", "class"):
        gate = torch.softmax(model.gates[task](x.flatten(1)), dim=1)
        torch.testing.assert_close(gate.sum(dim=1), torch.ones(5))
        expected = (gate.T[:, :, None] * codes).sum(dim=0)  # Σ_e g_t(x)_e h_e(x)
        torch.testing.assert_close(output.encodings[task].features, expected)
    # The experts start apart, and the two tasks' gates mix them differently.
    assert not torch.equal(codes[0], codes[1])
    assert not torch.allclose(
        output.encodings["reconstruction"].features, output.encodings["class"].features
    )


def test_one_expert_is_hard_sharing():
    model = build(compose_config([*SMALL, TASKS, "sharing=mmoe", "sharing.num_experts=1"])).model
    x = torch.rand(4, 1, 28, 28)
    output = model(x)
    for task in ("reconstruction", "class"):
        torch.testing.assert_close(output.encodings[task].features, model.experts[0].encode(x).z)


def test_mmoe_learns(run_dir):
    cfg = compose_config([*SMALL, TASKS, "sharing=mmoe", "weighting=upgrad"])
    train(cfg, run_dir)
    assert_learns(run_dir)


def test_mmoe_refuses_a_vae_and_no_experts_in_one_line():
    message = config_error([*SMALL, TASKS, "backbone=vae", "sharing=mmoe"])
    assert message.startswith("sharing=mmoe mixes the experts' codes")
    message = config_error([*SMALL, TASKS, "sharing=mmoe", "sharing.num_experts=0"])
    assert message == "sharing.num_experts=0 must be at least 1"
