"""Hard parameter sharing: a shared encoder, one head per task (Caruana 1997).

`sharing.shared_layers` splits the parameters into θ = (θ_shared, θ_task): with k, the first k
blocks of the trunk are shared and every task gets its own deep copy of the remaining blocks and
the latent layer (all copies start from the same weights, then follow their own task's
gradients). With null (the default) the whole encoder, latent layer included, is shared.
"""

import copy

from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.parts import SHARING
from mtlrun.schemas.sharing import SharedLayersConfig
from mtlrun.sharing.base import BackboneFactory, ModelOutput, MultiTaskModel
from mtlrun.sharing.heads import TaskHeads, check_shared_layers, encoding_cut, last_with_parameters
from mtlrun.sharing.task_networks import TaskNetworks
from mtlrun.tasks import Task


class HardSharing(TaskHeads):
    """The whole encoder shared: every head reads the same encoding."""

    def __init__(self, backbone: Backbone, tasks: list[Task], task_relation: float) -> None:
        super().__init__(tasks, backbone, task_relation)
        self.backbone = backbone
        self.task_names = [task.name for task in tasks]

    def forward(self, x: Tensor) -> ModelOutput:
        encoding = self.backbone.encode(x)
        predictions = {name: head(encoding) for name, head in self.heads.items()}
        encodings = dict.fromkeys(self.task_names, encoding)
        return ModelOutput(predictions, encodings, self.auxiliary(), encoding_cut(encoding))

    def encode(self, task: str, x: Tensor) -> Encoding:
        return self.backbone.encode(x)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The latent layer for autoencoder and VAE backbones; the last block's layer for
        classifier trunks (mlp, cnn), whose latent layer has no parameters."""
        return last_with_parameters([*self.backbone.blocks, self.backbone.latent])

    @property
    def shares_representation(self) -> bool:
        return True


def split_trunk(backbone: Backbone, tasks: list[Task], shared_layers: int) -> dict[str, Backbone]:
    """A network per task with a loss whose first `shared_layers` blocks are `backbone`'s own
    modules (the same objects in every network) and whose other blocks and latent layer are
    deep copies of `backbone`'s."""
    networks = {}
    for task in tasks:
        if task.has_loss:
            network = copy.deepcopy(backbone)
            for i in range(shared_layers):
                network.blocks[i] = backbone.blocks[i]
            networks[task.name] = network
    return networks


@SHARING.register("hard", schema=SharedLayersConfig)
def hard(
    cfg: SharedLayersConfig, make_backbone: BackboneFactory, tasks: list[Task]
) -> MultiTaskModel:
    """`sharing=hard`: one shared encoder, one head per task (Caruana 1997); with
    `shared_layers` k, only the first k trunk blocks are shared."""
    backbone = make_backbone()
    if cfg.shared_layers is None:
        return HardSharing(backbone, tasks, cfg.task_relation)
    check_shared_layers(cfg.shared_layers, backbone)
    return TaskNetworks(
        split_trunk(backbone, tasks, cfg.shared_layers),
        tasks,
        cfg.task_relation,
        shared_blocks=cfg.shared_layers,
    )
