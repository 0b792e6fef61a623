"""The trainer's schema (`trainer.KEY=...`): defaults and checks. Imports no torch: composing a
config, `--cfg job` and every refusal need only these."""

from dataclasses import dataclass

from mtlrun.config import check_choice, check_range


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 1000
    eval_every: int = 1  # evaluate on the validation split every this many epochs
    precision: str = "fp32"  # "fp32" or "bf16" (autocast)
    grad_clip: float = 0.0  # max global gradient norm; 0 turns clipping off
    deterministic: bool = False  # bit-for-bit repeatable runs (slower on GPU)
    compile: bool = False  # torch.compile the model
    image_rows: int = 2  # rows of input/reconstruction pairs in each reconstruction grid
    progress: bool = True  # the progress bar (shown only on a terminal)
    # processes training one run data-parallel (one per GPU on CUDA); README: Scaling out
    devices: int = 1
    # measure inter-task affinity (TAG, Fifty et al. 2021) every task_affinity_every steps
    task_affinity: bool = False
    task_affinity_every: int = 1

    def check(self, key: str) -> None:
        check_choice(f"{key}.precision", self.precision, ("fp32", "bf16"))
        names = (
            *("epochs", "batch_size", "eval_batch_size", "eval_every", "image_rows", "devices"),
            "task_affinity_every",
        )
        for name in names:
            check_range(f"{key}.{name}", getattr(self, name), 1)
        check_range(f"{key}.grad_clip", self.grad_clip, 0)
