"""Image grids: reconstructions, prior samples and latent interpolations."""

from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import draw_bounding_boxes, save_image

from mtlrun.sharing import MultiTaskModel


@torch.inference_mode()
def save_reconstructions(model: MultiTaskModel, task: str, inputs: Tensor, path: Path) -> None:
    """Rows of inputs, each followed by the row of their reconstructions (from the mean code)."""
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
    width = model.encode(task, inputs[:1]).features.shape[1]
    z = torch.randn((n, width), generator=torch.Generator().manual_seed(seed))
    samples = torch.sigmoid(model.head(task).decoder(z.to(inputs.device)))
    save_image(samples.float().cpu(), path, nrow=8, padding=2, pad_value=1.0)


@torch.inference_mode()
def save_interpolations(
    model: MultiTaskModel, task: str, inputs: Tensor, path: Path, steps: int = 10
) -> None:
    """Each row decodes codes on the straight line between two inputs' codes."""
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
