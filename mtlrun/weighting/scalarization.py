"""Scalarization over a grid of fixed task weights (Xin et al., "Do Current Multi-Task
Optimization Methods in Deep Learning Even Help?", NeurIPS 2022): the front a multi-task
optimiser has to beat."""

from torch import Tensor

from mtlrun.errors import ConfigError
from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import ScalarizationConfig
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.simplex import lattice_point, lattice_size, middle_point
from mtlrun.tasks import Task
from mtlrun.weighting.base import Weighting, total_loss


@WEIGHTINGS.register("scalarization", schema=ScalarizationConfig)
class Scalarization(Weighting):
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
        super().__init__(tasks, model)
        resolution, point = config.resolution, config.point
        size = lattice_size(resolution, len(tasks))
        if point is None:
            point = middle_point(resolution, len(tasks))
        elif point >= size:
            raise ConfigError(
                f"weighting.point={point} is past the grid: {len(tasks)} tasks with a loss at "
                f"weighting.resolution={resolution} have {size} points, 0 to {size - 1}"
            )
        self.weights = list(lattice_point(resolution, len(tasks), point))

    def backward(self, losses: list[Tensor], output: ModelOutput) -> Tensor:
        total = total_loss(self.weights, losses, output)
        total.backward()
        return total.detach()

    def logged(self) -> dict[str, float]:
        return {f"{name}/weight": w for name, w in zip(self.task_names, self.weights, strict=True)}
