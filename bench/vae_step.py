"""Where a VAE training step's time goes, and the floor it puts under the whole 10-epoch run.

The pytorch/examples VAE (784-400-20-400-784, batch 128) step, three ways, alternating,
several repetitions, best kept (this machine's timings vary by ±20 % from run to run):

- matmuls only: the step's nine matrix products (four forward, five backward) on their own,
  at the BLAS library's best speed: no fp32 training loop can do its arithmetic faster (and
  the same in bf16, for comparison);
- plain PyTorch: the step as a bare eager loop (forward, loss, backward, fused Adam);
- mtlrun: `train_epoch` of the bench's config, per step.

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
    "tasks=[reconstruction]",
    "optim=adam",
    "trainer.batch_size=128",
    "dataset.val_size=0",
]


def best_seconds(step, repeats: int, n: int = 200) -> float:
    """The best of `repeats` timings of `n` calls, per call."""
    for _ in range(20):
        step()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(n):
            step()
        timings.append((time.perf_counter() - started) / n)
    return min(timings)


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


def mtlrun_epoch_seconds(repeats: int) -> float:
    from hydra import compose, initialize_config_dir

    from mtlrun.config import config_dir
    from mtlrun.terminal import Reporter
    from mtlrun.train import Progress, build, train_epoch

    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        experiment = build(compose("train", overrides=CONFIG))
    order = torch.Generator().manual_seed(0)
    reporter = Reporter(Path(os.devnull), show_progress=False)

    class NoStop:
        def check(self) -> None:
            pass

    timings = []
    for _ in range(repeats):
        with reporter.progress() as bar:
            started = time.perf_counter()
            train_epoch(experiment, order, Progress(), bar, NoStop())
            timings.append(time.perf_counter() - started)
    return min(timings) / experiment.data.train.num_batches(BATCH)


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
    steps = STEPS_PER_EPOCH * EPOCHS
    matmuls = best_seconds(matmuls_only(torch.float32), args.repeats)
    matmuls_bf16 = best_seconds(matmuls_only(torch.bfloat16), args.repeats)
    plain = best_seconds(plain_pytorch(images), args.repeats)
    mtlrun = mtlrun_epoch_seconds(args.repeats)
    imports = import_seconds(args.repeats)
    rows = [
        ("matmuls only (the fp32 floor)", matmuls),
        ("matmuls only, in bf16", matmuls_bf16),
        ("plain PyTorch eager step", plain),
        ("mtlrun `train_epoch`, per step", mtlrun),
    ]
    lines = [
        f"{measured_on()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, best of {args.repeats}. Command: "
        f"`python bench/vae_step.py --repeats {args.repeats}`.",
        "",
        f"| one training step (batch {BATCH}) | ms | × {steps:,} steps, s | "
        "+ `import torch, torchvision`, s |",
        "|---|---|---|---|",
    ]
    for label, seconds in rows:
        lines.append(
            f"| {label} | {seconds * 1e3:.2f} | {seconds * steps:.1f} | "
            f"{seconds * steps + imports:.1f} |"
        )
    lines += ["", f"`import torch, torchvision` alone: {imports:.2f} s."]
    publish("vae_step", lines, write=not args.no_write)


if __name__ == "__main__":
    main()
