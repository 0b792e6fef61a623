"""Single-task baselines: an independent network and head per task, nothing shared.

One run trains them all side by side (their losses touch disjoint parameters, so the sum's
gradient is each task's own); `mtlrun report` measures Δm against these runs. For VAE
backbones, a reconstruction task's loss holds its network's KL term (its ELBO); the other
networks' codes are read as their means.
"""

from mtlrun.parts import SHARING
from mtlrun.schemas.sharing import SharingConfig
from mtlrun.sharing.base import BackboneFactory
from mtlrun.sharing.task_networks import TaskNetworks, own_networks
from mtlrun.tasks import Task


@SHARING.register("single_task", schema=SharingConfig)
def single_task(
    cfg: SharingConfig, make_backbone: BackboneFactory, tasks: list[Task]
) -> TaskNetworks:
    """`sharing=single_task`: one independent network and head per task, nothing shared: the
    baseline Δm is measured against."""
    return TaskNetworks(own_networks(make_backbone, tasks), tasks, cfg.task_relation)
