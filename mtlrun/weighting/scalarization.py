"""Scalarization over a grid of fixed task weights (Xin et al., "Do Current Multi-Task
Optimization Methods in Deep Learning Even Help?", NeurIPS 2022): the front a multi-task
optimiser has to beat."""

import torch

from mtlrun.errors import ConfigError
from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import ScalarizationConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.simplex import lattice_point, lattice_size, middle_point
from mtlrun.tasks import Task
from mtlrun.weighting.fixed import FixedWeighting


@WEIGHTINGS.register("scalarization", schema=ScalarizationConfig)
class Scalarization(FixedWeighting):
    """Xin et al. 2022 (§3, "scalarization"): one run per fixed weighting of the task losses,
    L = Σ_t w_t L_t, the weights a point of a grid on the simplex. The runs' final metrics
    trace the trade-off that static weights reach; Xin et al. (and Kurin et al., NeurIPS 2022)
    found that the multi-task optimisers they tested land on or inside it once the grid is
    fine enough. The weights sum to 1, so the middle point is `weighting=equal` scaled by 1/T
    (the same run under Adam, up to its ε). `tasks.<name>.weight` is not used. Logged: the
    weights, as `<task>/weight`."""

    def __init__(
        self, config: ScalarizationConfig, tasks: list[Task], model: MultiTaskModel
    ) -> None:
        super().__init__(config, tasks, model)
        resolution, point = config.resolution, config.point
        size = lattice_size(resolution, len(tasks))
        if point is None:
            point = middle_point(resolution, len(tasks))
        elif point >= size:
            raise ConfigError(
                f"weighting.point={point} is past the grid: {len(tasks)} tasks with a loss at "
                f"weighting.resolution={resolution} have {size} points, 0 to {size - 1}"
            )
        # `weighting=fixed` with the point's weights in place of the tasks' own.
        self.weights = list(lattice_point(resolution, len(tasks), point))
        self.weight_vector = torch.tensor(self.weights)
