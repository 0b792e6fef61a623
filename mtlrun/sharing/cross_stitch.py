"""Cross-stitch networks (Misra et al. 2016, "Cross-stitch Networks for Multi-task Learning").

One network per task (each from its own random weights); after the blocks in
`sharing.stitch_after` (null: after every block), a cross-stitch unit replaces each task's
activations by a learned linear combination of all tasks' activations, x̃_t = Σ_s α_ts x_s, with
one scalar per pair of tasks for the whole layer, so one unit fits dense and conv blocks alike.
α starts near the identity: `sharing.init_self` on the diagonal, the rest of each row spread
evenly over the other tasks, so each row sums to 1 and every network starts mostly its own.

α trains at `sharing.alpha_lr_scale` times `optim.lr` (its own optimiser parameter group). Misra et
al. (§5.2, "Learning rates for cross-stitch units", and Table 2) found the layers' gradient
updates too small for α, which starts one to two orders of magnitude larger than AlexNet's
weights; training with SGD, they scaled α's learning rate (Caffe's lr_mult) by 1, 10, 10² and
10³, found 10²–10³ best and higher values to diverge. That factor is tuned to their losses and
layers: under SGD α's step is lr × factor × its gradient, and α's gradient sums over every
activation of the layer it mixes, so it grows with the layer and the loss. mtlrun's defaults
train with every optimiser it ships:
- adam, adamw: 10², the low end of the paper's best range. Adam's steps are about lr whatever
  the gradient, so the factor sets α's step itself (10³ × lr 5e-3 is a step of 5, which left
  MultiMNIST at chance in mtlrun's test); at 10² cross-stitch is the best row of the MultiMNIST
  table (BENCHMARKS.md).
- sgd: 1, α at `optim.lr` like every other weight. On the tests' small autoencoder (a summed
  reconstruction loss) at SGD's default lr 0.05, every factor from 10 up gave a NaN loss within
  two epochs, while 1 trains as hard sharing does. The paper's 10³ gives α a peak lr of 5 on
  `+experiment=multimnist optim=sgd`, which was reported to give a NaN loss in the first
  epoch; a 15-epoch run of it here (seed 0, CPU) did not diverge and reached 96.50 / 95.39 %
  test accuracy, against 95.38 / 93.98 % with the default 1: where 10³ is stable it trains α
  faster. `sharing.alpha_lr_scale=1000` is the paper's setting, for losses and layers like
  theirs.
"""

import torch
from torch import Tensor, nn

from mtlrun.backbones import Backbone
from mtlrun.errors import ConfigError
from mtlrun.parts import SHARING
from mtlrun.schemas.sharing import CrossStitchConfig
from mtlrun.sharing.base import BackboneFactory
from mtlrun.sharing.task_networks import TaskNetworks, own_networks
from mtlrun.tasks import Task

# α's learning-rate factor by optimiser when sharing.alpha_lr_scale is null (see above)
DEFAULT_SCALES = {"adam": 100.0, "adamw": 100.0, "sgd": 1.0}


class CrossStitchUnit(nn.Module):
    """Mixes the stacked activations (tasks first) of all task networks with α (T×T)."""

    def __init__(self, num_tasks: int, init_self: float) -> None:
        super().__init__()
        alpha = torch.full((num_tasks, num_tasks), (1.0 - init_self) / (num_tasks - 1))
        self.alpha = nn.Parameter(alpha.fill_diagonal_(init_self))

    def forward(self, stacked: Tensor) -> Tensor:
        # autocast does not cover tensordot: α follows the activations' dtype (bf16 or fp32)
        return torch.tensordot(self.alpha.to(stacked.dtype), stacked, dims=1)


class CrossStitchNetworks(TaskNetworks):
    """Task networks mixed by cross-stitch units, whose α train at their own learning rate.

    Their last shared parameters (GradNorm's W, `last_shared_parameters`) are the last unit's
    α: after it no parameter serves more than one task, and every task's loss depends on it,
    each through its own row, so G_t measures how hard task t pulls on its mixing weights."""

    def __init__(
        self,
        networks: dict[str, Backbone],
        tasks: list[Task],
        task_relation: float,
        mixers: dict[int, nn.Module],
        alpha_lr_scale: float | None,
    ) -> None:
        super().__init__(networks, tasks, task_relation, mixers=mixers)
        self.alpha_lr_scale = alpha_lr_scale

    def learning_rate_scales(self, optimizer: str) -> list[tuple[list[nn.Parameter], float]]:
        scale = self.alpha_lr_scale
        if scale is None:
            scale = DEFAULT_SCALES.get(optimizer, 1.0)  # a plug-in optimiser: α as the rest
        return [([unit.alpha for unit in self.mixers.values()], scale)]


@SHARING.register("cross_stitch", schema=CrossStitchConfig)
def cross_stitch(
    cfg: CrossStitchConfig, make_backbone: BackboneFactory, tasks: list[Task]
) -> CrossStitchNetworks:
    networks = own_networks(make_backbone, tasks)
    if len(networks) < 2:
        raise ConfigError(
            f"sharing=cross_stitch mixes the networks of two or more tasks with a loss, "
            f"not {len(networks)}; add a task or use sharing=hard"
        )
    n = len(next(iter(networks.values())).blocks)
    stitch_after = list(range(n)) if cfg.stitch_after is None else cfg.stitch_after
    for i in stitch_after:
        if not 0 <= i < n:
            raise ConfigError(
                f"sharing.stitch_after={stitch_after} names block {i}, but the backbone has {n} "
                f"blocks; choose indices from 0 to {n - 1} (or null: after every block)"
            )
    if len(set(stitch_after)) < len(stitch_after):
        raise ConfigError(f"sharing.stitch_after={stitch_after} names a block twice")
    mixers = {i: CrossStitchUnit(len(networks), cfg.init_self) for i in stitch_after}
    return CrossStitchNetworks(networks, tasks, cfg.task_relation, mixers, cfg.alpha_lr_scale)
