"""`mtlrun sample RUN [n=64] [checkpoint=best|last] [seed=0] [out=DIR]`: image grids from a
trained model into RUN/samples/ (or DIR, for a run folder that cannot be written): prior
samples (backbones with a prior), reconstructions and latent interpolations of test images."""

import sys
from pathlib import Path

import torch

from mtlrun.errors import UserError
from mtlrun.images import save_interpolations, save_prior_samples, save_reconstructions
from mtlrun.rebuild import load_trained, split_arguments
from mtlrun.runfolder import writable_folder

MAX_IMAGES = 1024  # a 32 × 32 grid: about 1,000 pixels a side for MNIST or CIFAR-10


def main() -> None:
    run_dir, options, overrides = split_arguments(
        sys.argv[1:], {"n": "64", "checkpoint": "best", "seed": "0", "out": ""}
    )
    try:
        n, seed = int(options["n"]), int(options["seed"])
    except ValueError:
        raise UserError(
            f"n={options['n']!r} and seed={options['seed']!r} must be integers"
        ) from None
    if not 1 <= n <= MAX_IMAGES:
        raise UserError(
            f"n={n} must be between 1 and {MAX_IMAGES}: a grid of more images makes a PNG too "
            "large for image viewers to open; draw several grids with different seed=S instead"
        )
    out = writable_folder(Path(options["out"] or run_dir / "samples"))  # before the work
    experiment, checkpoint = load_trained(run_dir, options["checkpoint"], overrides)
    reconstruction = experiment.reconstruction
    if reconstruction is None:
        raise UserError(f"{run_dir} has no reconstruction task, so no decoder to draw images with")
    if not experiment.data.info.is_image:
        raise UserError(f"{run_dir} was trained on vectors, not images: there are no grids to draw")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model, name = experiment.model, reconstruction.name
    inputs = experiment.data.test.head(n).inputs
    written = [out / f"recon_{checkpoint}_n{n}.png", out / f"interpolation_{checkpoint}.png"]
    with experiment.autocast:
        save_reconstructions(model, name, inputs, written[0])
        save_interpolations(model, name, inputs[: 2 * min(8, max(1, n // 2))], written[1])
        if experiment.model.has_prior:
            written.append(out / f"prior_{checkpoint}_n{n}_seed{seed}.png")
            save_prior_samples(model, name, inputs, n, written[-1], seed=seed)
    for path in written:
        print(path)
