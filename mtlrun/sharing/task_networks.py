"""One encoder network per task, run side by side: the common ground of hard sharing with a
task-specific part, soft sharing, cross-stitch networks, concatenated codes and single-task
baselines."""

import torch
from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.backbones.base import features_of, with_features
from mtlrun.sharing.base import BackboneFactory, ModelOutput
from mtlrun.sharing.heads import TaskHeads, last_with_parameters
from mtlrun.tasks import Task


def own_networks(make_backbone: BackboneFactory, tasks: list[Task]) -> dict[str, Backbone]:
    """A freshly initialised network for every task with a loss (a task without one, like
    generation, reads another task's head and needs no network)."""
    return {task.name: make_backbone() for task in tasks if task.has_loss}


class TaskNetworks(TaskHeads):
    """Task `t`'s head reads network `t`'s code; the networks run block by block in step.

    The first `shared_blocks` blocks may be the same modules in every network: they are then
    computed once, and their output is the cut every task reads (`ModelOutput.shared`). `mixers`
    map the stacked activations of all networks after the block they are keyed by to new ones
    (cross-stitch units); the stacked activations before the last mixer are then the cut. With
    VAE backbones, the KL term of a network whose code is decoded is part of that reconstruction
    task's loss (its ELBO); the other networks' codes are read only as their means.
    """

    def __init__(
        self,
        networks: dict[str, Backbone],
        tasks: list[Task],
        task_relation: float,
        shared_blocks: int = 0,
        mixers: dict[int, nn.Module] | None = None,
        head_source: Backbone | None = None,
    ) -> None:
        own = [task for task in tasks if task.name in networks]
        super().__init__(own, head_source or next(iter(networks.values())), task_relation)
        self.networks = nn.ModuleDict(networks)
        self.shared_blocks = shared_blocks
        self.mixers = nn.ModuleDict({str(i): mixer for i, mixer in (mixers or {}).items()})

    def encode_all(self, x: Tensor) -> tuple[dict[str, Encoding], list[Tensor]]:
        """Every network's encoding of `x`, and the cut of the graph every task reads."""
        networks = list(self.networks.values())
        h = networks[0].standardise(x)
        for block in networks[0].blocks[: self.shared_blocks]:
            h = block(h)
        shared = [features_of(h)] if self.shared_blocks else []
        hs = [h] * len(networks)
        for i in range(self.shared_blocks, len(networks[0].blocks)):
            hs = [network.blocks[i](h_t) for network, h_t in zip(networks, hs, strict=True)]
            if str(i) in self.mixers:
                # The mixed activations are the cut: everything before them (the stitch units
                # included) serves every task, everything after belongs to one. What rides
                # along with them (a SegNet's pooling indices) stays each network's own.
                mixed = self.mixers[str(i)](torch.stack([features_of(h_t) for h_t in hs]))
                shared = [mixed]
                hs = [with_features(h_t, m) for h_t, m in zip(hs, mixed.unbind(0), strict=True)]
        encodings = {
            name: network.latent(h_t)
            for (name, network), h_t in zip(self.networks.items(), hs, strict=True)
        }
        return encodings, shared

    def sharing_penalty(self) -> Tensor | None:
        """A weighted penalty tying the networks together (soft sharing); None here."""
        return None

    def forward(self, x: Tensor) -> ModelOutput:
        encodings, shared = self.encode_all(x)
        predictions = {name: head(encodings[name]) for name, head in self.heads.items()}
        return ModelOutput(predictions, encodings, self.auxiliary(self.sharing_penalty()), shared)

    def encode(self, task: str, x: Tensor) -> Encoding:
        return self.encode_all(x)[0][task]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """With mixers, the last one's parameters (a cross-stitch unit's α, through which every
        task's loss depends on every network before it); else the last shared block that has
        parameters; else none."""
        if self.mixers:
            return list(self.mixers[max(self.mixers, key=int)].parameters())
        networks = list(self.networks.values())
        return last_with_parameters(list(networks[0].blocks[: self.shared_blocks]))

    def last_layers(self) -> list[nn.Parameter]:
        """Every network's last layer with parameters (an autoencoder's latent layer)."""
        return [
            p
            for network in self.networks.values()
            for p in last_with_parameters([*network.blocks, network.latent])
        ]

    @property
    def shares_representation(self) -> bool:
        return bool(self.shared_blocks or self.mixers)
