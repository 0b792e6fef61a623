"""Nash-MTL (Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022)."""

import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import NashMTLConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation

if TYPE_CHECKING:
    from torchjd.aggregation import NashMTL


@WEIGHTINGS.register("nashmtl", schema=NashMTLConfig)
class NashMTLAggregation(GradientAggregation):
    """The Nash bargaining solution: weights α > 0 with (GᵀG) α = 1/α, so the update improves
    every task by 1/α_t (Algorithm 1). Needs `torchjd[nash-mtl]` (cvxpy, ECOS).

    torchjd's Nash-MTL keeps the last weights as the warm start of its solver; they are saved
    in the state dict, so a resumed run solves from the same point. When the number of tasks
    trained on changes (two-stage training) the solver starts again from equal weights.
    """

    aggregator: "NashMTL"

    def __init__(self, config: NashMTLConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import NashMTL  # imported when chosen: torchjd loads cvxpy

        super().__init__(
            config.name,
            tasks,
            model,
            lambda: NashMTL(
                n_tasks=len(tasks),
                max_norm=config.max_norm,
                update_weights_every=config.update_weights_every,
                optim_niter=config.optim_niter,
            ),
        )

    def aggregate(self, shared_parameters: list[nn.Parameter]) -> Tensor | None:
        rows = len(self.rows)
        if rows != self.aggregator.n_tasks:
            self.aggregator.n_tasks = rows
            self.aggregator.reset()
        with warnings.catch_warnings():
            # cvxpy's note that torchjd's problem is not DPP (each solve is compiled anew) is
            # for torchjd's authors, not something a user can act on.
            warnings.filterwarnings("ignore", "You are solving a parameterized problem")
            return super().aggregate(shared_parameters)

    def get_extra_state(self) -> dict[str, Any]:
        return {"alpha": torch.from_numpy(self.aggregator.weighting.prvs_alpha.copy())}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        alpha = state["alpha"].cpu().numpy()
        self.aggregator.n_tasks = len(alpha)
        self.aggregator.reset()  # reshapes the solver's state to n_tasks
        self.aggregator.weighting.prvs_alpha = alpha
