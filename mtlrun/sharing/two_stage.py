"""Two-stage training: pretrain an autoencoder on reconstruction, then fit the task heads on its
frozen codes (the classic unsupervised-pretraining recipe; Hinton & Salakhutdinov 2006, Bengio
et al. 2007).

The model is hard sharing's: one encoder, one head per task. Stage 1 (epochs 1 to
`sharing.stage1_epochs`) trains on the reconstruction tasks only: the encoder and the decoder
learn, the other tasks' losses are detached, so their heads are evaluated but not trained.
Stage 2 (the remaining epochs) freezes the encoder (requires_grad off, so its gradients stay
None and the optimiser skips it; eval mode, so dropout is off) and trains the other tasks' heads
on its codes; the decoder keeps its stage-1 weights too, since reconstruction is no longer
trained. Every metrics record carries its stage.

`sharing.stage1_epochs` must be less than `trainer.epochs`, or stage 2 never comes; the
strategy sees only its own config node, so that check is `check_epochs`, for the training loop
to call when it builds the model.
"""

from mtlrun.backbones import Backbone
from mtlrun.errors import ConfigError
from mtlrun.parts import SHARING
from mtlrun.schemas.sharing import TwoStageConfig
from mtlrun.sharing.base import BackboneFactory
from mtlrun.sharing.hard import HardSharing
from mtlrun.tasks import Task


class TwoStageSharing(HardSharing):
    def __init__(
        self, backbone: Backbone, tasks: list[Task], task_relation: float, stage1_epochs: int
    ) -> None:
        super().__init__(backbone, tasks, task_relation)
        self.stage1_epochs = stage1_epochs
        self.pretext = {task.name for task in tasks if task.reconstructs}
        self._stage = 1

    @property
    def stage(self) -> int:
        return self._stage

    def begin_epoch(self, epoch: int) -> None:
        # Derived from the epoch alone, so a resumed run is in the right stage.
        self._stage = 1 if epoch <= self.stage1_epochs else 2
        self.backbone.requires_grad_(self._stage == 1)

    def trains(self, task: str) -> bool:
        return (task in self.pretext) == (self._stage == 1)

    def train(self, mode: bool = True) -> "TwoStageSharing":
        super().train(mode)
        if self._stage == 2:
            self.backbone.eval()
        return self

    def check_epochs(self, epochs: int) -> None:
        if self.stage1_epochs >= epochs:
            raise ConfigError(
                f"sharing.stage1_epochs={self.stage1_epochs} leaves no epoch for stage 2 with "
                f"trainer.epochs={epochs}; lower sharing.stage1_epochs or raise trainer.epochs"
            )


@SHARING.register("two_stage", schema=TwoStageConfig)
def two_stage(
    cfg: TwoStageConfig, make_backbone: BackboneFactory, tasks: list[Task]
) -> TwoStageSharing:
    if not any(task.reconstructs for task in tasks):
        raise ConfigError(
            "sharing=two_stage pretrains on reconstruction, but no task reconstructs; "
            "add it (+task@tasks.reconstruction=reconstruction)"
        )
    if not any(task.has_loss and not task.reconstructs for task in tasks):
        raise ConfigError(
            "sharing=two_stage fits task heads on the pretrained codes in stage 2, but every "
            "task is a reconstruction; add one, e.g. +task@tasks.digit=classification"
        )
    return TwoStageSharing(make_backbone(), tasks, cfg.task_relation, cfg.stage1_epochs)
