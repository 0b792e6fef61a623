"""Where a VAE training step's time goes, and the floor it puts under the whole 10-epoch run.

The pytorch/examples VAE (784-400-20-400-784, batch 128) step, several ways, alternating,
several repetitions, best kept (this machine's timings drift; see bench/cpu_drift.py):

- matmuls only: the step's nine matrix products (four forward, five backward) on their own,
  at the BLAS library's best speed: no fp32 training loop can do its arithmetic faster (and
  the same in bf16, for comparison);
- plain PyTorch: the step as a bare eager loop (forward, loss, backward, fused Adam);
- mtlrun: `train_epoch` of the bench's config, per step, as it is, with `trainer.compile=true`
  and with `trainer.precision=bf16` (epochs alternating in one process; the first epoch of
  each, where compiling happens, is timed on its own).

With the time of `import torch, torchvision` (both processes pay it), the matmul floor gives
the least time any eager fp32 implementation could take for the run's 4,690 steps. Writes the
table into BENCHMARKS.md between the vae_step markers.

    python bench/vae_step.py [--repeats 5] [--no-write]
"""

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from benchmarks_md import measured_on, publish, require_data
from torch import nn

BATCH, STEPS_PER_EPOCH, EPOCHS = 128, 469, 10
CONFIG = [
    "backbone=vae",
    "backbone.hidden_dims=[400]",
    "backbone.latent_dim=20",
    "optim=adam",
    "trainer.batch_size=128",
    "dataset.val_size=0",
]


@dataclass
class Timing:
    per_step: float  # seconds, in the best epoch
    first_epoch_extra: float  # seconds the first epoch took beyond the best


def alternate(epochs: dict[str, Callable[[], None]], repeats: int) -> dict[str, Timing]:
    """Runs each candidate's epoch of STEPS_PER_EPOCH steps in turn, `repeats` + 1 times, so
    that the machine's drift hits every candidate alike. Keeps the best epoch per step, and
    how much longer the first epoch took (where `trainer.compile=true` compiles)."""
    timings: dict[str, list[float]] = {name: [] for name in epochs}
    for _ in range(repeats + 1):
        for name, epoch in epochs.items():
            started = time.perf_counter()
            epoch()
            timings[name].append(time.perf_counter() - started)
    return {
        # Drift can make a first epoch without warm-up cost the fastest: that is no extra.
        name: Timing(min(rest) / STEPS_PER_EPOCH, max(0.0, first - min(rest)))
        for name, (first, *rest) in timings.items()
    }


def steps(step: Callable[[], None]) -> Callable[[], None]:
    """An epoch of a one-step function."""

    def epoch() -> None:
        for _ in range(STEPS_PER_EPOCH):
            step()

    return epoch


def matmuls_only(dtype: torch.dtype):
    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, dtype=dtype)

    x, h, z = rand(BATCH, 784), rand(BATCH, 400), rand(BATCH, 20)
    w1, w2, w3, w4 = (rand(o, i) for i, o in [(784, 400), (400, 40), (20, 400), (400, 784)])
    g1, g2, g4 = rand(BATCH, 400), rand(BATCH, 40), rand(BATCH, 784)
    b1, b2, b4 = rand(400), rand(40), rand(784)

    def step() -> None:
        torch.addmm(b1, x, w1.t()), torch.addmm(b2, h, w2.t())  # forward
        torch.addmm(b1, z, w3.t()), torch.addmm(b4, h, w4.t())
        g4 @ w4, g4.t() @ h  # backward: fc4's input and weight gradients
        g1.t() @ z, g2 @ w2, g2.t() @ h  # fc3's weight, fc2's input and weight gradients
        g1.t() @ x  # fc1's weight gradient (the images need none)

    return step


class TutorialVAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 400), nn.Linear(400, 40)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        mu, logvar = self.fc2(F.relu(self.fc1(x))).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.fc4(F.relu(self.fc3(z))), mu, logvar


def plain_pytorch(images: torch.Tensor):
    model = TutorialVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    order = torch.randperm(len(images))
    batches = iter(())

    def step() -> None:
        nonlocal batches
        x = next(batches, None)
        if x is None:
            batches = (images[i] for i in order.split(BATCH))
            x = next(batches)
        logits, mu, logvar = model(x)
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        optimizer.zero_grad(set_to_none=True)
        ((bce + kl) / len(x)).backward()
        optimizer.step()

    return step


def mtlrun_epochs(variants: dict[str, list[str]]) -> dict[str, Callable[[], None]]:
    """`train_epoch` of the bench's config with each variant's extra overrides."""
    from hydra import compose, initialize_config_dir

    from mtlrun.checkpoint import Progress
    from mtlrun.config import config_dir
    from mtlrun.experiment import build
    from mtlrun.loop import train_epoch
    from mtlrun.signals import StopSignals
    from mtlrun.terminal import Reporter

    reporter = Reporter(Path(os.devnull), show_progress=False)
    no_stop = StopSignals()  # not entered: no signal handlers, so `check` never stops

    def epoch_of(extra: list[str]) -> Callable[[], None]:
        with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
            experiment = build(compose("train", overrides=CONFIG + extra))
        order = torch.Generator().manual_seed(0)

        def epoch() -> None:
            with reporter.progress() as bar:
                train_epoch(experiment, order, Progress(), bar, no_stop)

        return epoch

    return {name: epoch_of(extra) for name, extra in variants.items()}


def import_seconds(repeats: int) -> float:
    code = "import torch, torchvision"
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = parser.parse_args()
    require_data()
    torch.manual_seed(0)
    images = torch.rand(60_000, 784)
    total_steps = STEPS_PER_EPOCH * EPOCHS
    timings = alternate(
        {
            "matmuls only (the fp32 floor)": steps(matmuls_only(torch.float32)),
            "matmuls only, in bf16": steps(matmuls_only(torch.bfloat16)),
            "plain PyTorch eager step": steps(plain_pytorch(images)),
            **mtlrun_epochs(
                {
                    "mtlrun `train_epoch`": [],
                    "mtlrun, `trainer.compile=true`": ["trainer.compile=true"],
                    "mtlrun, `trainer.precision=bf16`": ["trainer.precision=bf16"],
                }
            ),
        },
        args.repeats,
    )
    imports = import_seconds(args.repeats)
    lines = [
        f"{measured_on()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, best of {args.repeats}. Command: "
        f"`python bench/vae_step.py --repeats {args.repeats}`.",
        "",
        f"| one training step (batch {BATCH}) | ms | × {total_steps:,} steps, s | "
        "first epoch's extra s | + both + `import torch, torchvision`, s |",
        "|---|---|---|---|---|",
    ]
    for label, timing in timings.items():
        run_seconds = timing.per_step * total_steps
        whole = run_seconds + timing.first_epoch_extra + imports
        lines.append(
            f"| {label} | {timing.per_step * 1e3:.2f} | {run_seconds:.1f} | "
            f"{timing.first_epoch_extra:.1f} | {whole:.1f} |"
        )
    lines += ["", f"`import torch, torchvision` alone: {imports:.2f} s."]
    publish("vae_step", lines, write=not args.no_write)


if __name__ == "__main__":
    main()
