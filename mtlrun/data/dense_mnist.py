"""Dense MNIST: a dense-prediction benchmark small enough to train on a CPU, with the three
per-pixel tasks of NYUv2 (segmentation, depth, surface normals) on MultiMNIST canvases.

Each image is a MultiMNIST canvas (Sener & Koltun's: a digit at the top left of a 36×36 canvas,
a random partner at (6, 6), merged by a pixel-wise max), resized to 32×32 so that SegNet's
stages halve it evenly. The scene behind it:
- each digit is a relief standing out of a far background (depth 8) toward the viewer: its
  strokes, blurred by a Gaussian of 1 pixel, times a height set by its class, 2 + 0.4·k for
  digit k. Where the two reliefs overlap, the higher one is seen;
- `segmentation` (11 classes): a pixel is labelled with the digit it sees where that digit's
  intensity is at least 0.5, background (class 10) where neither digit has ink, and
  IGNORE_LABEL on the faint edges of the strokes between the two (as NYUv2 leaves uncertain
  pixels out);
- `depth` (N×1×H×W): 8 − the height seen, valid everywhere;
- `normal` (N×3×H×W): the unit normal of the depth map, (−∂z/∂x, −∂z/∂y, 1) normalised, from
  central differences; every pixel valid.
The height of a digit, and so which digit is seen where they overlap, follows from the digits'
classes: the tasks share what they need to know, and none is solved by the intensities alone.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlrun.data.multimnist import layers
from mtlrun.data.registry import RawData
from mtlrun.data.split import IGNORE_LABEL, DatasetInfo, Split, TargetInfo
from mtlrun.data.torchvision_sets import load_torchvision, normalization
from mtlrun.errors import ConfigError
from mtlrun.parts import DATASETS
from mtlrun.schemas.dataset import DenseMNISTConfig

SIZE = 32
BACKGROUND = 10  # the background's class
STROKE = 0.5  # from this intensity on, a pixel is labelled with its digit; fainter ones ignored
FAR = 8.0  # the background's depth
BASE_HEIGHT, HEIGHT_STEP = 2.0, 0.4  # digit k's relief: its blurred strokes × (2 + 0.4·k)
BLUR = 1.0  # the standard deviation, in pixels, of the Gaussian that smooths the strokes

TARGETS = {
    "segmentation": TargetInfo(num_classes=11, per_pixel=True),
    "depth": TargetInfo(dim=1, per_pixel=True),
    "normal": TargetInfo(dim=3, per_pixel=True),
}


def blurred(intensities: Tensor) -> Tensor:
    """Intensities (…×H×W) smoothed by a 5×5 Gaussian of standard deviation `BLUR`."""
    offsets = torch.arange(-2.0, 3.0)
    weights = torch.exp(-(offsets**2) / (2 * BLUR**2))
    kernel = torch.outer(weights, weights) / weights.sum() ** 2
    flat = intensities.reshape(-1, 1, *intensities.shape[-2:])
    return F.conv2d(flat, kernel[None, None], padding=2).reshape(intensities.shape)


def scene(left: Tensor, right: Tensor, labels: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    """The per-pixel targets of canvases whose two layers have intensities `left` and `right`
    (N×H×W in [0, 1]) and digits `labels`."""
    intensities = torch.stack([left, right])  # 2×N×H×W
    digits = torch.stack(labels)[:, :, None, None]  # 2×N×1×1
    heights = blurred(intensities) * (BASE_HEIGHT + HEIGHT_STEP * digits)
    height, seen = heights.max(0)  # the nearer layer's height, and which layer that is
    depth = FAR - height
    seen_intensity = intensities.gather(0, seen[None])[0]
    seen_digit = digits.expand_as(intensities).gather(0, seen[None])[0]
    segmentation = torch.where(seen_intensity >= STROKE, seen_digit, IGNORE_LABEL)
    segmentation = segmentation.masked_fill(intensities.amax(0) == 0, BACKGROUND)
    slope_y, slope_x = torch.gradient(depth, dim=(1, 2))
    normal = torch.stack([-slope_x, -slope_y, torch.ones_like(depth)], 1)
    return {
        "segmentation": segmentation.long(),
        "depth": depth[:, None],
        "normal": F.normalize(normal, dim=1),
    }


def split(images: Tensor, labels: Tensor, generator: torch.Generator) -> Split:
    """A canvas per image with a partner drawn at random, and its targets."""
    partner = torch.randint(len(images), (len(images),), generator=generator)
    left, right = (layer.float() / 255 for layer in layers(images, images[partner], SIZE))
    targets = scene(left, right, (labels, labels[partner]))
    return Split(torch.maximum(left, right)[:, None], targets)


@DATASETS.register("dense_mnist", schema=DenseMNISTConfig)
def dense_mnist(cfg: DenseMNISTConfig) -> RawData:
    """MultiMNIST canvases with per-pixel segmentation, depth and normal targets (see the
    module docstring), from the MNIST files in `dataset.root` (null: $MTLRUN_DATA, else ./data)."""
    from torchvision.datasets import MNIST

    train_x, train_y, test_x, test_y = load_torchvision(MNIST, cfg)
    for key, wanted, available in (
        ("n_train", cfg.n_train, len(train_x)),
        ("n_test", cfg.n_test, len(test_x)),
    ):
        if wanted > available:
            raise ConfigError(f"dataset.{key}={wanted} is more than MNIST's {available} images")
    generator = torch.Generator().manual_seed(cfg.seed)
    train = split(train_x[: cfg.n_train], train_y[: cfg.n_train], generator)
    test = split(test_x[: cfg.n_test], test_y[: cfg.n_test], generator)
    info = DatasetInfo(cfg.name, (1, SIZE, SIZE), TARGETS, normalization("MNIST", cfg))
    return RawData(info, train, test, cfg.val_size)
