"""What every gradient aggregator shares: the shared-parameter check, the auxiliary loss,
tasks not trained on, and the per-epoch logs."""

import pytest
import torch

from mtlrun.errors import ConfigError
from tests.weighting.problems import SharedVector, aggregated, linear_losses, make

AGGREGATORS = [
    *("pcgrad", "mgda", "cagrad", "upgrad", "nashmtl", "aligned_mtl", "imtl_g", "dualproj"),
    *("graddrop", "config", "fairgrad", "gradvac", "excess_mtl", "pcd"),
]
# GradDrop combines gradients on the representation and ExcessMTL weighs the whole loss: the
# others aggregate the Jacobian of the shared parameters (`GradientAggregation`).
JACOBIAN_AGGREGATORS = [name for name in AGGREGATORS if name not in ("graddrop", "excess_mtl")]


@pytest.mark.parametrize(
    ("name", "options"),
    [*((name, {}) for name in AGGREGATORS), ("gradnorm", {"gradient_of": "representation"})],
)
def test_a_strategy_that_shares_nothing_is_a_one_line_config_error(name, options):
    model = SharedVector([0.0, 0.0], shares=False)
    weighting = make(name, model, **options)
    h = model.representation()
    with pytest.raises(ConfigError) as error:
        weighting.backward(linear_losses(h, [[1.0, 0.0], [0.0, 1.0]]), model.output(h))
    assert str(error.value) == (
        f"weighting={name} needs parameters shared between tasks; use sharing=hard"
    )


@pytest.mark.parametrize(
    ("name", "options"), [("upgrad", {}), ("gradnorm", {"gradient_of": "representation"})]
)
def test_a_compiled_model_is_a_one_line_config_error(name, options):
    model = SharedVector([0.0, 0.0])

    @torch.compile(backend="aot_eager")  # what trainer.compile does, without code generation
    def forward(theta: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = theta * 1.0
        return h, linear_losses(h, [[1.0, 0.0], [0.0, 1.0]])

    h, losses = forward(model.theta)
    with pytest.raises(ConfigError, match=f"^weighting={name} cannot see inside a compiled model"):
        make(name, model, **options).backward(losses, model.output(h))


def test_the_auxiliary_loss_is_added_once_and_not_aggregated():
    model = SharedVector([0.0, 0.0])
    weighting = make("pcgrad", model)
    h = model.representation()
    auxiliary = torch.tensor([0.0, 3.0]) @ h
    weighting.backward(linear_losses(h, [[1.0, 0.0], [-1.0, 1.0]]), model.output(h, auxiliary))
    pcgrad = aggregated("pcgrad", [[1.0, 0.0], [-1.0, 1.0]])
    assert torch.allclose(model.theta.grad, pcgrad + torch.tensor([0.0, 3.0]))


def test_a_task_not_trained_on_keeps_out_of_the_step_and_the_logs():
    model = SharedVector([0.0, 0.0])
    weighting = make("mgda", model)
    h = model.representation()
    trained, frozen = linear_losses(h, [[1.0, 0.0], [0.0, 2.0]])
    total = weighting.backward([trained, frozen.detach()], model.output(h))
    assert torch.equal(model.theta.grad, torch.tensor([1.0, 0.0]))  # g₁ alone, not min-norm
    assert total.item() == pytest.approx((trained + frozen).item())
    assert weighting.logged() == {}  # nothing was aggregated


def test_logs_are_epoch_averages_of_trained_tasks_and_reset():
    model = SharedVector([0.0, 0.0])
    weighting = make("upgrad", model, tasks=3)
    # Task t1 is not trained on; t0 and t2 are orthogonal, then equal.
    for gradients in ([[1.0, 0.0], [5.0, 5.0], [0.0, 1.0]], [[1.0, 0.0], [5.0, 5.0], [1.0, 0.0]]):
        h = model.representation()
        losses = linear_losses(h, gradients)
        weighting.backward([losses[0], losses[1].detach(), losses[2]], model.output(h))
    logged = weighting.logged()
    assert set(logged) == {"t0/cosine", "t0/weight", "t2/cosine", "t2/weight"}
    # No conflict, so the aggregate is the mean: at 45° to orthogonal rows, along equal ones.
    for task in ("t0", "t2"):
        assert logged[f"{task}/cosine"] == pytest.approx((2**-0.5 + 1) / 2, abs=1e-4)
    assert weighting.logged() == {}


# Four tasks in three dimensions: conflicting, parallel, orthogonal and a zero row among them.
KNOWN_JACOBIAN = [[3.0, -1.0, 2.0], [-2.0, 1.0, 0.5], [1.0, 1.0, -1.0], [0.0, 0.0, 0.0]]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Nash-MTL's solver on the zero row
@pytest.mark.parametrize("name", JACOBIAN_AGGREGATORS)
def test_logged_cosines_are_those_of_the_jacobian_rows_with_the_update(name):
    """Cosines come from the Gramian where the aggregator forms one, from J otherwise: either
    way they are F.cosine_similarity(J, d) of the Jacobian and the update it left in .grad."""
    model = SharedVector([0.0, 0.0, 0.0])
    weighting = make(name, model, tasks=4)
    h = model.representation()
    weighting.backward(linear_losses(h, KNOWN_JACOBIAN), model.output(h))
    jacobian = torch.tensor(KNOWN_JACOBIAN)
    expected = torch.nn.functional.cosine_similarity(jacobian, model.theta.grad[None], dim=1)
    logged = weighting.logged()
    cosines = torch.tensor([logged[f"t{t}/cosine"] for t in range(4)])
    torch.testing.assert_close(cosines, expected, rtol=1e-5, atol=1e-6)


def test_cosines_from_the_gramian_take_no_pass_over_the_jacobian():
    model = SharedVector([0.0, 0.0, 0.0])
    weighting = make("upgrad", model, tasks=4)
    assert not weighting.aggregator._forward_hooks  # nothing sees J but the aggregator
    assert weighting.aggregator.gramian_weighting._forward_hooks
