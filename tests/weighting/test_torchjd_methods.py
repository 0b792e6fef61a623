"""The aggregators mtlrun takes from torchjd beyond the first five, each checked on a small
Jacobian for the behaviour its paper defines it by."""

import copy
import math

import pytest
import torch

from mtlrun.errors import ConfigError
from tests.weighting.problems import SharedVector, aggregated, linear_losses, make

CONFLICTING = [[1.0, 0.0], [-2.0, 1.0]]  # a negative inner product: the mean hurts task 0


def test_aligned_mtl_gives_orthogonal_tasks_the_same_norm_whatever_their_scale():
    # Rows of norms 3 and 1: aligned, both have the smallest singular value, 1; then summed.
    update = aggregated("aligned_mtl", [[3.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(update, torch.tensor([1.0, 1.0]))


def test_aligned_mtl_is_the_sum_of_the_rows_of_the_aligned_jacobian():
    jacobian = torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    eigenvalues, vectors = torch.linalg.eigh(jacobian @ jacobian.T)
    balance = eigenvalues.min().sqrt() * vectors @ torch.diag(eigenvalues.rsqrt()) @ vectors.T
    aligned = balance @ jacobian  # Ĵ = σ V Λ^(-1/2) Vᵀ J: every singular value σ
    torch.testing.assert_close(
        torch.linalg.svdvals(aligned), eigenvalues.min().sqrt().expand(3), rtol=1e-6, atol=1e-9
    )
    update = aggregated("aligned_mtl", jacobian.float().tolist())
    # The authors' code and LibMTL: alpha = B.sum(0), the update Jᵀ alpha = Σ_t Ĵ_t.
    torch.testing.assert_close(update, aligned.sum(dim=0).float(), rtol=1e-4, atol=1e-5)
    alpha = balance.sum(dim=0)
    torch.testing.assert_close(update, (alpha @ jacobian).float(), rtol=1e-4, atol=1e-5)


def test_imtl_g_projects_equally_onto_every_task_and_its_weights_sum_to_one():
    jacobian = torch.tensor(CONFLICTING)
    update = aggregated("imtl_g", CONFLICTING)
    projections = jacobian @ update / jacobian.norm(dim=1)
    torch.testing.assert_close(projections[0], projections[1])
    weights = torch.linalg.solve(jacobian.T, update)  # update = Jᵀ w
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0))


def test_dualproj_keeps_a_harmless_mean_and_projects_a_harmful_one():
    torch.testing.assert_close(
        aggregated("dualproj", [[1.0, 0.0], [0.0, 2.0]]), torch.tensor([0.5, 1.0])
    )
    jacobian = torch.tensor(CONFLICTING)
    assert jacobian[0] @ jacobian.mean(dim=0) < 0
    update = aggregated("dualproj", CONFLICTING)
    # The closest such vector to the mean: here on the face g_0 · d = 0 (torchjd's quadratic
    # program regularises its Gramian by 1e-4, hence the tolerance).
    assert (jacobian @ update >= -1e-3).all()
    mean = jacobian.mean(dim=0)
    expected = mean - (jacobian[0] @ mean) / (jacobian[0] @ jacobian[0]) * jacobian[0]
    torch.testing.assert_close(update, expected, rtol=0, atol=1e-3)


def test_config_makes_the_same_positive_angle_with_every_task():
    jacobian = torch.tensor(CONFLICTING)
    update = aggregated("config", CONFLICTING)
    cosines = jacobian @ update / (jacobian.norm(dim=1) * update.norm())
    torch.testing.assert_close(cosines[0], cosines[1])
    assert cosines[0] > 0
    # Its length: the sum of the task gradients' projections onto its direction.
    direction = update / update.norm()
    torch.testing.assert_close(update.norm(), (jacobian @ direction).sum())


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_fairgrad_weights_solve_the_alpha_fair_condition(alpha):
    # Algorithm 1: G w = w^(-1/α), G the Gramian, the power per element.
    jacobian = torch.tensor([[1.0, 0.5, 0.0], [-0.5, 1.0, 1.0]], dtype=torch.float64)
    update = aggregated("fairgrad", jacobian.float().tolist(), alpha=alpha).double()
    weights = torch.linalg.lstsq(jacobian.T, update[:, None]).solution.squeeze(1)
    gramian = jacobian @ jacobian.T
    torch.testing.assert_close(gramian @ weights, weights.pow(-1 / alpha), rtol=1e-3, atol=1e-4)


def vaccinated(g_i: torch.Tensor, g_j: torch.Tensor, target: float) -> torch.Tensor:
    """Wang et al.'s eq. 3: g_i plus the multiple of g_j that brings their cosine to `target`."""
    phi = (g_i @ g_j / (g_i.norm() * g_j.norm())).item()
    scale = g_i.norm() * (target * math.sqrt(1 - phi**2) - phi * math.sqrt(1 - target**2))
    return g_i + g_j * scale / (g_j.norm() * math.sqrt(1 - target**2))


def test_gradvac_corrects_toward_an_ema_target_that_it_keeps_in_checkpoints():
    g = torch.tensor(CONFLICTING, dtype=torch.float64)
    phi = (g[0] @ g[1] / (g[0].norm() * g[1].norm())).item()
    model = SharedVector([0.0, 0.0])
    weighting = make("gradvac", model, beta=0.5)

    def step(on: torch.nn.Module) -> torch.Tensor:
        model.theta.grad = None
        h = model.representation()
        on.backward(linear_losses(h, CONFLICTING), model.output(h))
        return model.theta.grad.double()

    # The targets start at 0: the correction is PCGrad's projection.
    expected = vaccinated(g[0], g[1], 0.0) + vaccinated(g[1], g[0], 0.0)
    torch.testing.assert_close(step(weighting), expected, rtol=1e-5, atol=1e-6)
    # Then φ̂ = (1 − β)·0 + β·φ: the next step corrects only up to that cosine.
    target = 0.5 * phi
    expected = vaccinated(g[0], g[1], target) + vaccinated(g[1], g[0], target)
    state = {key: value.clone() for key, value in weighting.state_dict().items()}
    torch.testing.assert_close(step(weighting), expected, rtol=1e-5, atol=1e-6)
    # A weighting loaded from the state after the first step takes the same second step.
    resumed = make("gradvac", model, beta=0.5)
    resumed.load_state_dict(state)
    torch.testing.assert_close(step(resumed), expected, rtol=1e-5, atol=1e-6)


def test_gradvac_moves_its_target_after_every_pair_even_one_it_does_not_correct():
    # Algorithm 1 (eq. 4 after the `if`): a pair that agrees beyond its target is left as it is,
    # but its target still moves to (1 − β) φ̂ + β φ. LibMTL moves it only when it corrects, so
    # its second step would be PCGrad's projection (target 0) instead.
    harmless, g = [[1.0, 0.0], [1.0, 1.0]], torch.tensor(CONFLICTING, dtype=torch.float64)
    model = SharedVector([0.0, 0.0])
    step = stepper(model)
    weighting = make("gradvac", model, beta=0.5)
    torch.testing.assert_close(step(weighting, harmless), torch.tensor([2.0, 1.0]).double())
    target = 0.5 * 2**-0.5  # β · cos 45°
    expected = vaccinated(g[0], g[1], target) + vaccinated(g[1], g[0], target)
    update = step(weighting, CONFLICTING)
    torch.testing.assert_close(update, expected, rtol=1e-5, atol=1e-6)
    projected = vaccinated(g[0], g[1], 0.0) + vaccinated(g[1], g[0], 0.0)
    assert not torch.allclose(update, projected, rtol=1e-3)


def stepper(model: SharedVector):
    """One step of a weighting on L_t = g_t · θ: the update it leaves in θ.grad."""

    def step(on: torch.nn.Module, gradients: list[list[float]]) -> torch.Tensor:
        model.theta.grad = None
        h = model.representation()
        on.backward(linear_losses(h, gradients), model.output(h))
        return model.theta.grad.double()

    return step


def weights_of(update: torch.Tensor, gradients: list[list[float]]) -> torch.Tensor:
    """w with update = Jᵀ w (J square and invertible here)."""
    return torch.linalg.solve(torch.tensor(gradients, dtype=torch.float64).T, update)


def test_excess_mtl_moves_weight_to_the_task_whose_excess_risk_has_fallen_least():
    # Eq. 6-7: Ê_i = Σ g_i² / √(Σ_steps g_i²), over the baseline of the first step, which keeps
    # uniform weights (the authors' code); eq. 9: w ← w · exp(η Ê) / Σ. Task 0's gradient
    # stays, task 1's shrinks tenfold.
    first, second = [[1.0, 0.0], [0.0, 2.0]], [[1.0, 0.0], [0.0, 0.2]]
    model = SharedVector([0.0, 0.0])
    step = stepper(model)
    weighting = make("excess_mtl", model, robust_step_size=0.5)
    uniform = torch.tensor([0.5, 0.5], dtype=torch.float64)
    torch.testing.assert_close(weights_of(step(weighting, first), first), uniform)
    state = copy.deepcopy(weighting.state_dict())
    baseline = torch.tensor([1.0, 2.0], dtype=torch.float64)  # Σ g² / √(g²) = |g| here
    risk = torch.tensor([1 / math.sqrt(2), 0.04 / math.sqrt(4.04)], dtype=torch.float64)
    expected = torch.softmax(uniform.log() + 0.5 * risk / baseline, 0)
    torch.testing.assert_close(weights_of(step(weighting, second), second), expected)
    assert expected[0] > 0.5  # task 0, its risk the same, gained weight
    # Resumed from the state after the first step, it takes the same second step.
    resumed = make("excess_mtl", model, robust_step_size=0.5)
    resumed.load_state_dict(state)
    torch.testing.assert_close(weights_of(step(resumed, second), second), expected)


def test_excess_mtl_keeps_uniform_weights_through_a_warm_up_that_a_resumed_run_finishes():
    gradients, smaller = [[1.0, 0.0], [0.0, 2.0]], [[1.0, 0.0], [0.0, 0.2]]
    model = SharedVector([0.0, 0.0])
    step = stepper(model)
    weighting = make("excess_mtl", model, n_warmup_steps=2)
    uniform = torch.tensor([0.5, 0.5], dtype=torch.float64)
    torch.testing.assert_close(weights_of(step(weighting, gradients), gradients), uniform)
    state = copy.deepcopy(weighting.state_dict())
    torch.testing.assert_close(weights_of(step(weighting, smaller), smaller), uniform)
    after = weights_of(step(weighting, smaller), smaller)
    assert not torch.allclose(after, uniform)  # the warm-up is over
    resumed = make("excess_mtl", model, n_warmup_steps=2)
    resumed.load_state_dict(state)
    torch.testing.assert_close(weights_of(step(resumed, smaller), smaller), uniform)
    torch.testing.assert_close(weights_of(step(resumed, smaller), smaller), after)


def test_excess_mtl_refuses_a_warm_up_without_the_first_step():
    with pytest.raises(ConfigError, match="weighting.n_warmup_steps=0 at least 1"):
        make("excess_mtl", SharedVector([0.0, 0.0]), n_warmup_steps=0)


def pcd_update(primary: torch.Tensor, other: torch.Tensor, tau: float) -> torch.Tensor:
    """Two tasks, first step (the EMA of ‖g‖² is ‖g‖², so g̃ = g/‖g‖): the projection of g̃_1
    onto the half-space g̃_2ᵀd ≥ τ, rescaled to ‖g_1‖."""
    unit_primary, unit_other = primary / primary.norm(), other / other.norm()
    slack = unit_other @ unit_primary - tau
    direction = unit_primary - min(slack.item(), 0.0) * unit_other
    return direction / direction.norm() * primary.norm()


@pytest.mark.parametrize("tau", [0.0, 0.3])
def test_pcd_follows_the_primary_task_and_keeps_the_other_a_fraction_of_its_progress(tau):
    g = torch.tensor(CONFLICTING, dtype=torch.float64)
    update = aggregated("pcd", CONFLICTING, tau=tau).double()
    torch.testing.assert_close(update, pcd_update(g[0], g[1], tau), rtol=1e-5, atol=1e-6)
    # The primary task's gradient norm, and a step that is not the primary gradient's:
    torch.testing.assert_close(update.norm(), g[0].norm())
    assert (g[1] / g[1].norm()) @ update > (g[1] / g[1].norm()) @ g[0]
    # a gradient that does not conflict leaves the primary one as it is.
    harmless = [[1.0, 0.0], [1.0, 1.0]]
    torch.testing.assert_close(aggregated("pcd", harmless, tau=tau), torch.tensor([1.0, 0.0]))


def test_pcd_primary_names_the_task_it_follows():
    g = torch.tensor(CONFLICTING, dtype=torch.float64)
    update = aggregated("pcd", CONFLICTING, primary="t1", tau=0.3).double()
    torch.testing.assert_close(update, pcd_update(g[1], g[0], 0.3), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError) as error:
        make("pcd", SharedVector([0.0, 0.0]), primary="t7")
    assert str(error.value) == "weighting.primary='t7' is not a task; choose one of: t0, t1"


def test_pcd_normalises_by_an_ema_of_the_norms_that_it_keeps_in_checkpoints():
    model = SharedVector([0.0, 0.0])
    step = stepper(model)
    weighting = make("pcd", model, tau=0.5, beta=0.5)
    step(weighting, CONFLICTING)
    state = copy.deepcopy(weighting.state_dict())
    louder = [[1.0, 0.0], [-20.0, 10.0]]  # task 1's gradient ten times longer than the EMA
    expected = step(weighting, louder)
    fresh = make("pcd", model, tau=0.5, beta=0.5)
    assert not torch.allclose(step(fresh, louder), expected)  # the EMA changes the step
    resumed = make("pcd", model, tau=0.5, beta=0.5)
    resumed.load_state_dict(state)
    torch.testing.assert_close(step(resumed, louder), expected)
