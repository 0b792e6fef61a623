"""The task-relation penalty (Zhang & Yeung 2010) on the heads, with any sharing strategy."""

import pytest
import torch

from mtlrun.experiment import build
from mtlrun.lifecycle import train
from mtlrun.sharing.task_relation import task_covariance, task_relation_penalty
from tests.conftest import compose_config
from tests.sharing import SMALL, assert_learns, config_error

# digit has 10 classes; parity and magnitude 2 each: only their heads' final layers match.
DIGITS = [
    *SMALL,
    "dataset.target_name=digit",
    "~task@tasks.reconstruction",
    "+task@tasks.digit=classification",
    "tasks.digit.hidden_dims=[]",
]
DIGITS += [f"+tasks.{name}.type=classification" for name in ("parity", "magnitude")]


def trace_norm_penalty(model) -> float:
    """0.1·‖W‖*² for W the flattened final Linear weights of the parity and magnitude heads:
    tr(W Ω⁻¹ Wᵀ) at the optimal Ω (up to its small ridge), counted here."""
    columns = []
    for name in ("magnitude", "parity"):
        linears = [m for m in model.head(name).modules() if isinstance(m, torch.nn.Linear)]
        columns.append(linears[-1].weight.detach().flatten())
    nuclear = torch.linalg.matrix_norm(torch.stack(columns, dim=1), ord="nuc")
    return 0.1 * nuclear.item() ** 2


def test_the_heads_of_a_shape_form_a_group_with_a_trace_one_covariance():
    model = build(compose_config([*DIGITS, "sharing.task_relation=0.1"])).model
    relation = model.task_relation
    assert [sorted(group) for group in relation.groups] == [["magnitude", "parity"]]
    ((names, omega),) = relation.covariances().items()
    assert sorted(names) == ["magnitude", "parity"]
    assert torch.allclose(omega, omega.T)
    assert torch.linalg.eigvalsh(omega).min() >= -1e-6
    assert torch.isclose(omega.trace(), torch.tensor(1.0))
    penalty = relation.penalty(model.trains).item()
    assert penalty == pytest.approx(trace_norm_penalty(model), rel=1e-3)


def test_covariance_and_penalty_follow_the_closed_form():
    weights = torch.randn(20, 3)
    gram = weights.T @ weights
    omega = task_covariance(weights)
    # Ω = G^{1/2} / tr(G^{1/2}): Ω² is proportional to G
    assert torch.allclose((omega @ omega) / (omega @ omega).trace(), gram / gram.trace(), atol=1e-5)
    # with Ω at its optimum, tr(W Ω⁻¹ Wᵀ) is the squared trace norm of W
    nuclear = torch.linalg.matrix_norm(weights, ord="nuc")
    assert torch.isclose(task_relation_penalty(weights), nuclear**2, rtol=1e-3)
    # no gradient through Ω: the gradient is 2 W Ω⁻¹ (Ω plus the ridge)
    weights.requires_grad_(True)
    task_relation_penalty(weights).backward()
    inverse = torch.linalg.inv(omega + 1e-4 * torch.eye(3))
    assert torch.allclose(weights.grad, 2 * weights.detach() @ inverse, rtol=1e-3)


@pytest.mark.parametrize(
    "sharing",
    [
        ["sharing=hard"],
        ["sharing=hard", "sharing.shared_layers=1"],
        ["sharing=soft"],
        ["sharing=cross_stitch"],
        ["sharing=single_task"],
        ["sharing=concat", "+tasks.reconstruction.type=reconstruction"],
        [
            "sharing=two_stage",
            "sharing.stage1_epochs=1",
            "+tasks.reconstruction.type=reconstruction",
        ],
    ],
    ids=lambda overrides: " ".join(overrides),
)
def test_every_strategy_adds_the_penalty_to_its_auxiliary_loss(sharing):
    model = build(compose_config([*DIGITS, *sharing, "sharing.task_relation=0.1"])).model
    model.begin_epoch(2)  # two-stage: the classifiers train in stage 2
    x = torch.rand(4, 1, 28, 28)
    with_penalty = model(x).auxiliary_loss
    penalty = model.task_relation.penalty(model.trains)
    model.task_relation = None
    without = model(x).auxiliary_loss
    assert penalty.item() == pytest.approx(trace_norm_penalty(model), rel=1e-3)
    assert torch.allclose(with_penalty, penalty if without is None else without + penalty)


def test_it_trains(run_dir):
    train(compose_config([*DIGITS, "sharing.task_relation=0.1"]), run_dir)
    assert_learns(run_dir, "digit")


def test_heads_without_a_partner_are_a_config_error():
    message = config_error(
        [*SMALL, "+task@tasks.class=classification", "sharing.task_relation=0.1"]
    )
    assert message.startswith("sharing.task_relation=0.1 needs two task heads whose final Linear")
    assert "reconstruction 784×64, class 10×128" in message
    assert "must be at least 0" in config_error([*DIGITS, "sharing.task_relation=-1"])
