"""Multi-gate Mixture-of-Experts (Ma et al., "Modeling Task Relationships in Multi-task Learning
with Multi-gate Mixture-of-Experts", KDD 2018)."""

import math

import torch
from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.errors import ConfigError
from mtlrun.parts import SHARING
from mtlrun.schemas.sharing import MMoEConfig
from mtlrun.sharing.base import BackboneFactory, ModelOutput
from mtlrun.sharing.heads import TaskHeads, last_with_parameters
from mtlrun.tasks import Task


class MMoE(TaskHeads):
    """Task t reads f_t(x) = Σ_e g_t(x)_e · h_e(x) (their eq. 5-6): the experts h_e are the
    backbone's encoder, `num_experts` times (their codes vectors, or a per-pixel backbone's
    feature maps, mixed pixel by pixel with the same weights); the gate g_t(x) = softmax(W_t x)
    is one linear map of the (standardised, flattened) input per task. The experts' codes are
    the cut every task reads (`ModelOutput.shared`, stacked: experts × batch × code), so the
    gradient aggregators and GradNorm work on them; the gates belong to their task, like its
    head."""

    def __init__(self, experts: list[Backbone], tasks: list[Task], task_relation: float) -> None:
        super().__init__(tasks, experts[0], task_relation)
        self.experts = nn.ModuleList(experts)
        inputs = math.prod(experts[0].input_shape)
        self.gates = nn.ModuleDict({name: nn.Linear(inputs, len(experts)) for name in self.heads})

    def expert_codes(self, x: Tensor) -> Tensor:
        return torch.stack([expert.encode(x).features for expert in self.experts])

    def mix(self, task: str, x: Tensor, codes: Tensor) -> Encoding:
        gate = torch.softmax(self.gates[task](self.experts[0].standardise(x).flatten(1)), dim=1)
        mixed = torch.einsum("be,eb...->b...", gate, codes)  # codes: vectors or feature maps
        return Encoding(features=mixed, z=mixed)

    def forward(self, x: Tensor) -> ModelOutput:
        codes = self.expert_codes(x)
        encodings = {name: self.mix(name, x, codes) for name in self.heads}
        predictions = {name: head(encodings[name]) for name, head in self.heads.items()}
        return ModelOutput(predictions, encodings, self.auxiliary(), [codes])

    def encode(self, task: str, x: Tensor) -> Encoding:
        return self.mix(task, x, self.expert_codes(x))

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Every expert's last layer with parameters: each task's loss depends on them all."""
        return [
            p
            for expert in self.experts
            for p in last_with_parameters([*expert.blocks, expert.latent])
        ]

    @property
    def shares_representation(self) -> bool:
        return True


@SHARING.register("mmoe", schema=MMoEConfig)
def mmoe(cfg: MMoEConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> MMoE:
    """`sharing=mmoe`: experts shared by all tasks, mixed by a softmax gate per task."""
    experts = [make_backbone() for _ in range(cfg.num_experts)]
    if experts[0].has_prior:
        raise ConfigError(
            "sharing=mmoe mixes the experts' codes, which a VAE's posterior samples cannot be; "
            "use a backbone without a prior (dense_ae, mlp or cnn), or sharing=hard"
        )
    return MMoE(experts, tasks, cfg.task_relation)
