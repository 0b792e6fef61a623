"""What every sharing strategy builds on: task heads (with the optional task-relation
regulariser on them), the config keys all strategies have, and small shared helpers."""

from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.errors import ConfigError
from mtlrun.sharing.base import MultiTaskModel
from mtlrun.sharing.task_relation import TaskRelation
from mtlrun.tasks import Task


def check_shared_layers(shared_layers: int | None, backbone: Backbone) -> None:
    n = len(backbone.blocks)
    if shared_layers is not None and not 0 <= shared_layers <= n:
        raise ConfigError(
            f"sharing.shared_layers={shared_layers} is out of range: the backbone has {n} "
            f"blocks, so choose 0 to {n} (or null to share the latent layer too)"
        )


def encoding_cut(encoding: Encoding) -> list[Tensor]:
    """The tensors an encoding is computed from: [μ, log σ²] for a VAE (the sample z is drawn
    from them), else the code itself."""
    return [encoding.features] if encoding.mu is None else [encoding.mu, encoding.logvar]


def last_with_parameters(modules: list[nn.Module]) -> list[nn.Parameter]:
    """The parameters of the last of `modules` that has any (a trunk block holds one layer with
    parameters, or none: a classifier's `FeatureLatent`, a lone `Flatten`)."""
    for module in reversed(modules):
        parameters = list(module.parameters())
        if parameters:
            return parameters
    return []


def add_terms(*terms: Tensor | None) -> Tensor | None:
    present = [term for term in terms if term is not None]
    return sum(present[1:], present[0]) if present else None


class TaskHeads(MultiTaskModel):
    """One head per task, built against `head_source` (a backbone, or a stand-in describing
    the code the heads read), plus the task-relation penalty on them when λ > 0."""

    def __init__(self, tasks: list[Task], head_source: Backbone, task_relation: float) -> None:
        super().__init__()
        heads = {task.name: task.build_head(head_source) for task in tasks}
        self.heads = nn.ModuleDict({name: head for name, head in heads.items() if head is not None})
        self.task_relation = TaskRelation(task_relation, self.heads) if task_relation else None

    def head(self, task: str) -> nn.Module:
        return self.heads[task]

    def auxiliary(self, *terms: Tensor | None) -> Tensor | None:
        """The auxiliary loss: `terms` (each already weighted, None for absent ones) plus the
        task-relation penalty."""
        relation = None if self.task_relation is None else self.task_relation.penalty(self.trains)
        return add_terms(*terms, relation)
