"""The optimisers' schemas (`optim=NAME`, `optim.KEY=...`): defaults and checks. Imports no torch:
composing a config, `--cfg job` and every refusal need only these."""

from dataclasses import dataclass, field

from mtlrun.config import check_choice, check_range
from mtlrun.errors import ConfigError

SCHEDULES = ("none", "cosine", "step", "onecycle")


@dataclass
class OptimConfig:
    """What every optimiser has: the learning rate, weight decay and the schedule (stepped
    once per optimiser step)."""

    name: str
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "none"  # none | cosine | step | onecycle
    step_epochs: int = 10  # schedule=step: decay the lr every this many epochs
    gamma: float = 0.1  # schedule=step: the decay factor

    def check(self, key: str) -> None:
        check_choice(f"{key}.schedule", self.schedule, SCHEDULES)
        check_range(f"{key}.lr", self.lr, 0, low_open=True)
        check_range(f"{key}.weight_decay", self.weight_decay, 0)
        if self.schedule == "step":
            check_range(f"{key}.step_epochs", self.step_epochs, 1)
            check_range(f"{key}.gamma", self.gamma, 0, low_open=True)


@dataclass
class AdamConfig(OptimConfig):
    """`optim=adam`: Adam (fused), its L2 weight decay added to the gradient."""

    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    # added to √v; its effect depends on the loss scale (losses are batch means)
    eps: float = 1.0e-8

    def check(self, key: str) -> None:
        super().check(key)
        if len(self.betas) != 2:
            raise ConfigError(
                f"{key}.betas={self.betas} must be two values in [0, 1), e.g. [0.9, 0.999]"
            )
        for index, beta in enumerate(self.betas):
            check_range(f"{key}.betas[{index}]", beta, 0, 1)
        check_range(f"{key}.eps", self.eps, 0, low_open=True)


@dataclass
class AdamWConfig(AdamConfig):
    """`optim=adamw`: AdamW (fused), Adam with the weight decay decoupled from the gradient."""

    weight_decay: float = 0.01


@dataclass
class SGDConfig(OptimConfig):
    """`optim=sgd`: SGD with momentum, by default on the cosine schedule."""

    lr: float = 0.05
    schedule: str = "cosine"  # none | cosine | step | onecycle
    momentum: float = 0.9
    nesterov: bool = False

    def check(self, key: str) -> None:
        super().check(key)
        check_range(f"{key}.momentum", self.momentum, 0, 1)
