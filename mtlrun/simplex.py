"""The grid of task weights that the scalarization front sweeps (Xin et al., "Do Current
Multi-Task Optimization Methods in Deep Learning Even Help?", NeurIPS 2022): every point of the
simplex whose weights are multiples of 1 / resolution. No torch: the sweep's size is computed
while Hydra composes, and the report labels the front's runs with their weights."""

from itertools import combinations
from math import comb
from typing import Any

from omegaconf import OmegaConf

# mtlrun's one task type without a loss: the weighting never sees it, so it has no weight.
LOSS_FREE_TASK_TYPES = ("generation",)


def lattice_size(resolution: int, tasks: int) -> int:
    """The number of points: the compositions of `resolution` into `tasks` parts."""
    return comb(resolution + tasks - 1, tasks - 1)


def lattice_point(resolution: int, tasks: int, point: int) -> tuple[float, ...]:
    """The weights of point `point` (0-based), the points in lexicographic order of their
    weights: for 2 tasks and resolution 8, point k is (k/8, 1 − k/8)."""
    size = lattice_size(resolution, tasks)
    if not 0 <= point < size:
        raise IndexError(f"point {point} is not in 0..{size - 1}")
    # Stars and bars: T − 1 bars among resolution + T − 1 places, each combination one point;
    # combinations() yields them in lexicographic order, which is that of the weights.
    bars = list(combinations(range(resolution + tasks - 1), tasks - 1))[point]
    edges = [-1, *bars, resolution + tasks - 1]
    return tuple((edges[i + 1] - edges[i] - 1) / resolution for i in range(tasks))


def middle_point(resolution: int, tasks: int) -> int:
    """The point nearest equal weights (equal weights where `resolution` is a multiple of
    `tasks`), the first in order on a tie: what one run of the grid trains when no sweep names
    its point."""
    points = (lattice_point(resolution, tasks, k) for k in range(lattice_size(resolution, tasks)))
    distances = [sum((w - 1 / tasks) ** 2 for w in weights) for weights in points]
    return distances.index(min(distances))


def sweep_size(resolution: int, tasks: Any) -> int:
    """The points of the lattice for a config's `tasks` node (those with a loss): what
    `+method=scalarization` sweeps `weighting.point` over, as `${simplex_points:...}`."""
    weighted = [node for node in tasks.values() if node.get("type") not in LOSS_FREE_TASK_TYPES]
    return lattice_size(int(resolution), len(weighted))


if not OmegaConf.has_resolver("simplex_points"):
    OmegaConf.register_new_resolver("simplex_points", sweep_size)
