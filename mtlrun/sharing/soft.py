"""Soft parameter sharing: one network per task, tied by an L2 penalty on the distance between
their parameters (Duong et al. 2015; see Ruder 2017, "An Overview of Multi-Task Learning in Deep
Neural Networks", §3.2).

The auxiliary loss adds `sharing.penalty` · Σ_{i<j} ||θ_i − θ_j||², summed over the layers that
hard sharing would share (`sharing.shared_layers` as in `hard`: null ties every trunk block and
the latent layer, k ties the first k blocks). Each network starts from its own random weights;
the penalty pulls the tied layers together, more the larger it is.
"""

from itertools import combinations

import torch
from torch import Tensor, nn

from mtlrun.backbones import Backbone
from mtlrun.parts import SHARING
from mtlrun.schemas.sharing import SoftSharingConfig
from mtlrun.sharing.base import BackboneFactory
from mtlrun.sharing.heads import check_shared_layers
from mtlrun.sharing.task_networks import TaskNetworks, own_networks
from mtlrun.tasks import Task


class SoftSharing(TaskNetworks):
    def __init__(
        self,
        networks: dict[str, Backbone],
        tasks: list[Task],
        task_relation: float,
        penalty: float,
        tied_layers: int | None,
    ) -> None:
        super().__init__(networks, tasks, task_relation)
        self.penalty = penalty
        self.tied_layers = tied_layers

    def tied_modules(self, network: Backbone) -> list[nn.Module]:
        if self.tied_layers is None:
            return [*network.blocks, network.latent]
        return list(network.blocks[: self.tied_layers])

    def parameter_distance(self) -> Tensor | None:
        """Σ_{i<j} ||θ_i − θ_j||² over the tied layers; None if nothing is tied."""
        tied = [
            [p for module in self.tied_modules(network) for p in module.parameters()]
            for network in self.networks.values()
        ]
        terms = [
            (a - b).pow(2).sum()
            for first, second in combinations(tied, 2)
            for a, b in zip(first, second, strict=True)
        ]
        return torch.stack(terms).sum() if terms else None

    def sharing_penalty(self) -> Tensor | None:
        distance = self.parameter_distance() if self.penalty else None
        return None if distance is None else self.penalty * distance


@SHARING.register("soft", schema=SoftSharingConfig)
def soft(cfg: SoftSharingConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> SoftSharing:
    networks = own_networks(make_backbone, tasks)
    check_shared_layers(cfg.shared_layers, next(iter(networks.values())))
    return SoftSharing(networks, tasks, cfg.task_relation, cfg.penalty, cfg.shared_layers)
