"""mtlrun against the usual tutorial loop: the pytorch/examples VAE on MNIST, 10 epochs.

Both run as whole processes (start-up, data loading, training, test passes, image grids),
alternating, several repetitions. Reports wall-clock seconds, the final test loss (nelbo, nats
per image) and mtlrun's start-up time (process start to the first training step, from
meta.json) next to the time of a bare `import torch`. Writes the table into BENCHMARKS.md
between the vae_speed markers.

    python bench/vae_speed.py [--repeats 3] [--device cpu] [--no-write]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks_md import measured_on, publish, require_data

ROOT = Path(__file__).resolve().parent.parent
MTLRUN_ARGS = [
    "backbone=vae",
    "backbone.hidden_dims=[400]",
    "backbone.latent_dim=20",
    "optim=adam",
    "optim.lr=1e-3",
    "trainer.batch_size=128",
    "trainer.epochs=10",
    "trainer.progress=false",
    "name=bench_vae",
    # All 60k training images, as the example uses (no validation split carved out).
    "dataset.val_size=0",
    # The example's loss is a sum over the batch, mtlrun's a mean: Adam is the same on both
    # but for ε, which is compared with √v and so scales with the loss. ε = 1e-8 on a sum of
    # 128 examples is ε = 1e-8 / 128 on their mean.
    "optim.eps=7.8125e-11",
]


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = parser.parse_args()
    require_data()
    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="mtlrun_bench_"))
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""

    def mtlrun(seed: int, *extra: str) -> tuple[float, dict, dict]:
        seconds, out = timed(
            [
                python,
                "-m",
                "mtlrun",
                "train",
                *MTLRUN_ARGS,
                f"device={args.device}",
                f"seed={seed}",
                *extra,
            ],
            work,
        )
        run_dir = Path(out.strip().splitlines()[-1])
        summary = json.loads((run_dir / "summary.json").read_text())["metrics"]
        return seconds, summary, json.loads((run_dir / "meta.json").read_text())

    rows = []
    for repeat in range(args.repeats):
        import_seconds, _ = timed([python, "-c", "import torch"], work)
        tutorial_seconds, out = timed(
            [python, str(ROOT / "bench" / "tutorial_vae.py"), "--seed", str(repeat)], work
        )
        full_seconds, full, meta = mtlrun(repeat)
        # What the tutorial computes: no importance-weighted bound at the end (it still tests
        # after every epoch, where mtlrun with no validation split tests once; BENCHMARKS.md).
        no_iw_seconds, _, _ = mtlrun(repeat, "tasks.reconstruction.iw_samples=0")
        rows.append(
            {
                "tutorial_s": tutorial_seconds,
                "tutorial_loss": float(re.search(r"test_loss ([\d.]+)", out).group(1)),
                "mtlrun_s": full_seconds,
                "no_iw_s": no_iw_seconds,
                "nelbo": full["test/reconstruction/nelbo"],
                "nll_iw": full["test/reconstruction/nll_iw"],
                "startup_s": meta["startup_seconds"],
                "import_torch_s": import_seconds,
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    def mean(key: str) -> float:
        return statistics.mean(row[key] for row in rows)

    lines = [
        f"{measured_on()}, device={args.device}, "
        f"{args.repeats} repetitions, alternating. Command: "
        f"`python bench/vae_speed.py --repeats {args.repeats} --device {args.device}`.",
        "",
        "| seed | tutorial loop s | mtlrun s (with nll_iw) | speed-up | mtlrun s (no nll_iw) | "
        "speed-up | tutorial test loss | mtlrun test nelbo | mtlrun nll_iw | "
        "mtlrun start-up s | `import torch` s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, row in enumerate([*rows, None]):
        row = row or {key: mean(key) for key in rows[0]}
        label = "**mean**" if i == len(rows) else str(i)
        lines.append(
            f"| {label} | {row['tutorial_s']:.1f} | {row['mtlrun_s']:.1f} | "
            f"{row['tutorial_s'] / row['mtlrun_s']:.2f}× | {row['no_iw_s']:.1f} | "
            f"{row['tutorial_s'] / row['no_iw_s']:.2f}× | {row['tutorial_loss']:.2f} | "
            f"{row['nelbo']:.2f} | {row['nll_iw']:.2f} | {row['startup_s']:.2f} | "
            f"{row['import_torch_s']:.2f} |"
        )
    publish("vae_speed", lines, write=not args.no_write)


if __name__ == "__main__":
    main()
