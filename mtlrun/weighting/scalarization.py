"""Scalarization over a grid of fixed task weights (Xin et al., "Do Current Multi-Task
Optimization Methods in Deep Learning Even Help?", NeurIPS 2022): the front a multi-task
optimiser has to beat."""

from dataclasses import dataclass

from torch import Tensor

from mtlrun.config import check_range
from mtlrun.errors import ConfigError
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.simplex import lattice_point, lattice_size, middle_point
from mtlrun.tasks import Task
from mtlrun.weighting.base import WEIGHTINGS, Weighting, WeightingConfig, total_loss


@dataclass
class ScalarizationConfig(WeightingConfig):
    """`weighting=scalarization`: L = Σ_t w_t L_t with w the lattice point `point` of the
    simplex at `resolution` (every weight a multiple of 1/resolution, Σ_t w_t = 1; for 2 tasks
    point k is (k/resolution, 1 − k/resolution)). `+method=scalarization` in a `-m` run sweeps
    `point` over the whole lattice: 9 runs for 2 tasks at resolution 8, 45 for 3."""

    resolution: int = 8
    # Set by the sweep. Unset (one run, or one job of a sweep over methods): the point nearest
    # equal weights, so that the weighting trains like every other one with its defaults.
    point: int | None = None

    def check(self, key: str) -> None:
        check_range(f"{key}.resolution", self.resolution, 1)
        if self.point is not None:
            check_range(f"{key}.point", self.point, 0)


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
