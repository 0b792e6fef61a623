"""Task grouping: one hard-shared network per group of tasks (the networks TAG's groupings
train, Fifty et al. 2021; `mtlrun report DIR groups=k` suggests the groups)."""

from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.config import as_override
from mtlrun.errors import ConfigError
from mtlrun.parts import SHARING
from mtlrun.schemas.sharing import GroupedConfig
from mtlrun.sharing.base import BackboneFactory, ModelOutput
from mtlrun.sharing.heads import TaskHeads, encoding_cut, last_with_parameters
from mtlrun.tasks import Task


class GroupedSharing(TaskHeads):
    """Group g's tasks read the encoding of network g (the backbone, one per group, each from
    its own random weights); a group of one is a single-task network. Only a single group
    shares parameters between all tasks (it is then hard sharing): otherwise the gradient
    aggregators, which need parameters every task shares, are refused."""

    def __init__(
        self,
        networks: dict[str, Backbone],
        groups: list[list[str]],
        tasks: list[Task],
        task_relation: float,
    ) -> None:
        super().__init__(tasks, next(iter(networks.values())), task_relation)
        self.networks = nn.ModuleDict(networks)
        self.group_of = {task: str(g) for g, group in enumerate(groups) for task in group}

    def forward(self, x: Tensor) -> ModelOutput:
        encodings_of = {g: network.encode(x) for g, network in self.networks.items()}
        encodings = {name: encodings_of[self.group_of[name]] for name in self.heads}
        predictions = {name: head(encodings[name]) for name, head in self.heads.items()}
        shared = encoding_cut(encodings_of["0"]) if len(self.networks) == 1 else []
        return ModelOutput(predictions, encodings, self.auxiliary(), shared)

    def encode(self, task: str, x: Tensor) -> Encoding:
        return self.networks[self.group_of[task]].encode(x)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        if len(self.networks) != 1:
            return []
        network = self.networks["0"]
        return last_with_parameters([*network.blocks, network.latent])

    @property
    def shares_representation(self) -> bool:
        return len(self.networks) == 1


@SHARING.register("grouped", schema=GroupedConfig)
def grouped(
    cfg: GroupedConfig, make_backbone: BackboneFactory, tasks: list[Task]
) -> GroupedSharing:
    """`sharing=grouped`: a hard-shared network per group of tasks."""
    with_loss = [task.name for task in tasks if task.has_loss]
    listed = [name for group in cfg.groups for name in group]
    unknown = sorted(set(listed) - set(with_loss))
    missing = [name for name in with_loss if name not in listed]
    twice = sorted({name for name in listed if listed.count(name) > 1})
    problem = None
    if unknown:
        problem = f"names tasks this run does not train: {', '.join(unknown)}"
    elif missing:
        problem = f"leaves out {', '.join(missing)}"
    elif twice:
        problem = f"lists {', '.join(twice)} twice"
    elif not cfg.groups or not all(cfg.groups):
        problem = "is empty or has an empty group"
    if problem:
        raise ConfigError(
            f"sharing.groups={as_override(cfg.groups)} {problem}; put every task "
            f"({', '.join(with_loss)}) in one group, e.g. sharing.groups=[[{','.join(with_loss)}]]"
        )
    networks = {str(g): make_backbone() for g in range(len(cfg.groups))}
    return GroupedSharing(networks, [list(group) for group in cfg.groups], tasks, cfg.task_relation)
