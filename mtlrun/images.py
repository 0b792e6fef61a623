"""Image grids of a run: inputs labelled with the predicted classes, reconstructions, prior
samples and latent interpolations, each written through the run folder (the other ranks of a
DDP run write none). torchvision is imported only where a grid is written."""

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlrun.data import Batch, Data, Split
from mtlrun.runfolder import RunFolder
from mtlrun.sharing import MultiTaskModel

if TYPE_CHECKING:
    from mtlrun.experiment import Experiment
    from mtlrun.tasks import Task


@torch.inference_mode()
def save_reconstructions(model: MultiTaskModel, task: str, inputs: Tensor, path: Path) -> None:
    """Rows of inputs, each followed by the row of their reconstructions (from the mean code)."""
    from torchvision.utils import save_image

    encoding = model.encode(task, inputs)
    outputs = torch.sigmoid(model.head(task)(replace(encoding, z=encoding.features)))
    per_row = 8
    rows = []
    for start in range(0, len(inputs), per_row):
        rows += [inputs[start : start + per_row], outputs[start : start + per_row]]
    save_image(torch.cat(rows).float().cpu(), path, nrow=per_row, padding=2, pad_value=1.0)


@torch.inference_mode()
def save_prior_samples(
    model: MultiTaskModel, task: str, inputs: Tensor, n: int, path: Path, seed: int = 0
) -> None:
    """Decoded samples from N(0, I) at the width of the code `task`'s decoder reads (`inputs`
    only tell that width and the device). The same noise for a seed, so grids compare across
    epochs, and drawing it leaves the global random state alone."""
    from torchvision.utils import save_image

    width = model.encode(task, inputs[:1]).features.shape[1]
    z = torch.randn((n, width), generator=torch.Generator().manual_seed(seed))
    samples = torch.sigmoid(model.head(task).decoder(z.to(inputs.device)))
    save_image(samples.float().cpu(), path, nrow=8, padding=2, pad_value=1.0)


@torch.inference_mode()
def save_interpolations(
    model: MultiTaskModel, task: str, inputs: Tensor, path: Path, steps: int = 10
) -> None:
    """Each row decodes codes on the straight line between two inputs' codes."""
    from torchvision.utils import save_image

    codes = model.encode(task, inputs).features
    start, end = codes[0::2], codes[1::2]
    n = min(len(start), len(end))
    weights = torch.linspace(0, 1, steps, device=codes.device).view(1, steps, 1)
    line = start[:n, None] * (1 - weights) + end[:n, None] * weights
    images = torch.sigmoid(model.head(task).decoder(line.flatten(0, 1)))
    save_image(images.float().cpu(), path, nrow=steps, padding=2, pad_value=1.0)


@torch.inference_mode()
def save_predictions(
    model: MultiTaskModel,
    inputs: Tensor,
    targets: dict[str, Tensor],
    tasks: dict[str, str],
    path: Path,
    scale: int = 3,
) -> None:
    """Inputs with the predicted classes written on them (task order, e.g. the left and right
    digits of MultiMNIST): green when every prediction is right, red otherwise. `tasks` maps
    each classification task to the target it predicts."""
    from torchvision.utils import draw_bounding_boxes, save_image

    predictions = model(inputs).predictions
    predicted = torch.stack([predictions[task].argmax(1) for task in tasks], 1).cpu()
    truth = torch.stack([targets[target] for target in tasks.values()], 1).cpu()
    images = F.interpolate(inputs.float().cpu().clamp(0, 1), scale_factor=scale, mode="nearest")
    images = (images * 255).to(torch.uint8).expand(-1, 3, -1, -1)
    frame = torch.tensor([[0, 0, images.shape[-1] - 1, images.shape[-2] - 1]])
    drawn = [
        draw_bounding_boxes(
            image,
            frame,
            labels=[" ".join(map(str, guess.tolist()))],
            colors="lime" if torch.equal(guess, right) else "red",
        )
        for image, guess, right in zip(images, predicted, truth, strict=True)
    ]
    save_image(torch.stack(drawn).float() / 255, path, nrow=8, padding=2, pad_value=1.0)


@torch.inference_mode()
def save_dense_predictions(
    model: MultiTaskModel, task: "Task", inputs: Tensor, batch: Batch, path: Path
) -> None:
    """Three rows: the inputs, a per-pixel task's targets and its predictions, drawn as the task
    draws them (`Task.pictures`), enlarged (nearest) to about 96 pixels a side when smaller."""
    from torchvision.utils import save_image

    prediction = model(inputs).predictions[task.name].float()
    target, predicted = task.pictures(prediction, batch)
    shown = inputs.float().clamp(0, 1).expand(-1, 3, -1, -1)
    rows = torch.cat([shown, target.float(), predicted.float()])
    scale = max(1, 96 // rows.shape[-2])
    rows = F.interpolate(rows, scale_factor=scale, mode="nearest")
    save_image(rows.cpu(), path, nrow=len(inputs), padding=2, pad_value=1.0)


def image_source(data: Data) -> Split:
    """Grids show validation images; the test images only when there is no validation split
    (images are never used to select anything)."""
    return data.val if len(data.val) else data.test


def save_images(experiment: "Experiment", run: RunFolder, tag: str) -> dict[str, Path]:
    """The grids of one evaluation (image data only): inputs labelled with the predicted
    classes, reconstructions, prior samples when the backbone has a prior, and for each
    per-pixel task its targets and predictions under 8 inputs."""
    if not experiment.data.info.is_image:
        return {}
    batch = image_source(experiment.data).head(8 * experiment.trainer.image_rows)
    # As the model sees them: a denoising task's grids show the corrupted inputs.
    inputs = experiment.model_inputs(batch.inputs)
    model = experiment.model
    classifiers = {t.name: t.grid_label for t in experiment.tasks if t.grid_label is not None}
    reconstruction = experiment.reconstruction
    grids: dict[str, tuple[str, Any]] = {}
    if classifiers:
        grids["predictions"] = (
            f"predictions_{tag}.png",
            partial(save_predictions, model, inputs, batch.targets, classifiers),
        )
    if reconstruction is not None:
        grids["reconstructions"] = (
            f"recon_{tag}.png",
            partial(save_reconstructions, model, reconstruction.name, inputs),
        )
    if reconstruction is not None and model.has_prior:
        sizes = [task.prior_samples for task in experiment.tasks if task.prior_samples]
        grids["samples"] = (
            f"samples_{tag}.png",
            partial(
                save_prior_samples, model, reconstruction.name, inputs, sizes[0] if sizes else 64
            ),
        )
    for task in experiment.tasks:
        if task.per_pixel:
            grids[task.name] = (
                f"{task.name}_{tag}.png",
                partial(save_dense_predictions, model, task, inputs[:8], batch.rows(slice(0, 8))),
            )
    written = {}
    model.eval()
    with experiment.autocast, own_random_numbers(experiment):
        for kind, (name, draw) in grids.items():
            path = run.write_file(run.images / name, draw)
            if path is not None:
                written[kind] = path
    model.train()
    return written


def save_interpolation(experiment: "Experiment", run: RunFolder) -> Path | None:
    """interpolation.png at the end of training, for image data with a reconstruction task."""
    reconstruction, data = experiment.reconstruction, experiment.data
    if reconstruction is None or not data.info.is_image:
        return None
    inputs = image_source(data).head(16).inputs
    draw = partial(save_interpolations, experiment.model, reconstruction.name, inputs)
    with experiment.autocast, own_random_numbers(experiment):
        return run.write_file(run.images / "interpolation.png", draw)


def own_random_numbers(experiment: "Experiment") -> Any:
    """Under DDP, the random numbers rank 0 draws for its images come from a fork of its
    generators, so that all ranks keep drawing alike for training (a randomised aggregator, such
    as PCGrad's order of projections, then draws the same on every rank)."""
    device = experiment.device
    return torch.random.fork_rng(
        devices=[device] if device.type == "cuda" else [],
        enabled=experiment.ranks.distributed,
        device_type=device.type,
    )
