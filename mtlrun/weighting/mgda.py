"""MGDA (Désidéri 2012; Sener & Koltun, "Multi-Task Learning as Multi-Objective
Optimization", NeurIPS 2018)."""

from dataclasses import dataclass

from omegaconf import DictConfig

from mtlrun.config import parse
from mtlrun.errors import ConfigError
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation
from mtlrun.weighting.base import WEIGHTINGS, WeightingConfig


@dataclass
class MGDAConfig(WeightingConfig):
    epsilon: float = 0.001  # Frank-Wolfe stops when its step size falls below this
    max_iters: int = 100  # Frank-Wolfe iterations at most


@WEIGHTINGS.register("mgda")
class MGDAAggregation(GradientAggregation):
    """The minimum-norm convex combination of the task gradients, found with the Frank-Wolfe
    solver of Sener & Koltun (Algorithm 2); it decreases every task, or is zero at a
    Pareto-stationary point."""

    def __init__(self, node: DictConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import MGDA  # imported when chosen: torchjd loads cvxpy

        config = parse(MGDAConfig, node, "weighting")
        if config.epsilon <= 0 or config.max_iters < 1:
            raise ConfigError(
                f"weighting.epsilon={config.epsilon} and weighting.max_iters={config.max_iters} "
                "must be positive"
            )
        super().__init__(
            config.name,
            tasks,
            model,
            lambda: MGDA(epsilon=config.epsilon, max_iters=config.max_iters),
        )
