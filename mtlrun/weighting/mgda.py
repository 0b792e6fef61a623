"""Full MGDA (Désidéri, "Multiple-gradient descent algorithm (MGDA) for multiobjective
optimization", 2012), solved with the Frank-Wolfe algorithm of Sener & Koltun ("Multi-Task
Learning as Multi-Objective Optimization", NeurIPS 2018, Algorithm 2).

It solves on the Jacobian of the task losses with respect to all the shared parameters. It is
not the MGDA-UB of Sener & Koltun's experiments (`weighting=mgda_ub`), which minimises an
upper bound of the same objective using the gradients with respect to the shared
representation instead.
"""

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import MGDAConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation


@WEIGHTINGS.register("mgda", schema=MGDAConfig)
class MGDAAggregation(GradientAggregation):
    """Full MGDA: the minimum-norm convex combination of the task gradients on all the shared
    parameters (every row of the Jacobian is one task's gradient on every parameter that
    `output.shared` depends on), found with Sener & Koltun's Frank-Wolfe solver (their
    Algorithm 2, as torchjd's `MGDA`); it decreases every task, or is zero at a
    Pareto-stationary point. One backward per task through the shared encoder each step; the
    cheaper MGDA-UB of their experiments, on the shared representation, is `weighting=mgda_ub`.
    """

    def __init__(self, config: MGDAConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import MGDA  # imported when chosen: torchjd loads cvxpy

        super().__init__(
            config.name,
            tasks,
            model,
            lambda: MGDA(epsilon=config.epsilon, max_iters=config.max_iters),
        )
