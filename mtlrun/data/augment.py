"""The standard augmentation of NYUv2 and Cityscapes training images (`dataset.augment`):
MTAN's and LibMTL's `RandomScaleCrop` (credited there to Jialong Wu, lorenmt/mtan issue 34),
then a left-right flip with probability 1/2, as LibMTL's `NYUv2.__getitem__` applies them.

Per image: a scale s from the choices, a crop of int(H/s) × int(W/s) at a uniformly random
place, resized back to H × W (the image and the normals bilinearly with aligned corners, the
class map and the depth by nearest neighbour, as `F.interpolate` does), the depth divided by s
(a closer view); then, flipped, the normals' x component negated. Here it runs on a whole batch
at once, on its device, with draws from torch's random state (saved in checkpoints, so a resumed
run draws the same crops): one `grid_sample` and one gather per target, no host sync.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlrun.data.split import Batch


@dataclass
class Crops:
    """One crop per image: its scale, size (rows, columns), top-left corner, and the flip."""

    scale: Tensor  # float64, N: the scales as chosen, which float32 would round
    rows: Tensor  # int64, N: int(H / s)
    columns: Tensor  # int64, N: int(W / s)
    top: Tensor  # int64, N, in [0, H - rows]
    left: Tensor  # int64, N, in [0, W - columns]
    flipped: Tensor  # bool, N


def draw_crops(
    n: int, size: tuple[int, int], scales: tuple[float, ...], flip: bool, device: torch.device
) -> Crops:
    height, width = size
    # The crop sizes as LibMTL computes them, in double precision on the host: int(288 / 1.2)
    # is 240, which float32 would make 239.
    sizes = torch.tensor([[int(height / s), int(width / s)] for s in scales], device=device)
    choice = torch.randint(len(scales), (n,), device=device)
    rows, columns = sizes[choice].unbind(1)
    top = (torch.rand(n, device=device) * (height - rows + 1)).long().clamp_(max=height - rows)
    left = (torch.rand(n, device=device) * (width - columns + 1)).long().clamp_(max=width - columns)
    if flip:
        flipped = torch.rand(n, device=device) < 0.5
    else:
        flipped = torch.zeros(n, dtype=torch.bool, device=device)
    scale = torch.tensor(scales, dtype=torch.float64, device=device)[choice]
    return Crops(scale, rows, columns, top, left, flipped)


def bilinear(maps: Tensor, crops: Crops) -> Tensor:
    """Each N×C×H×W map's crop resized back to H×W, bilinear with aligned corners: output
    pixel y reads the crop at top + y·(rows − 1)/(H − 1)."""
    n, _, height, width = maps.shape
    device = maps.device

    def normalised(start: Tensor, length: Tensor, size: int) -> Tensor:
        # in float64, rounded once to the maps' dtype: float32 steps would add their own error
        steps = torch.arange(size, device=device, dtype=torch.float64)
        source = start[:, None] + steps[None, :] * ((length - 1) / max(size - 1, 1))[:, None]
        return source * (2 / max(size - 1, 1)) - 1

    y = normalised(crops.top.double(), crops.rows.double(), height)
    x = normalised(crops.left.double(), crops.columns.double(), width)
    grid = torch.stack(
        [x[:, None, :].expand(n, height, width), y[:, :, None].expand(n, height, width)], dim=-1
    )
    return F.grid_sample(maps, grid.to(maps.dtype), mode="bilinear", align_corners=True)


def nearest(maps: Tensor, crops: Crops) -> Tensor:
    """Each map's crop (N×H×W, or N×C×H×W) resized back by nearest neighbour as
    `F.interpolate(mode="nearest")` computes it: output pixel y reads crop pixel
    min(floor(y · (rows / H)), rows − 1), in float32."""
    height, width = maps.shape[-2:]
    device = maps.device

    def sources(start: Tensor, length: Tensor, size: int) -> Tensor:
        steps = torch.arange(size, device=device, dtype=torch.float32)
        index = (steps[None, :] * (length.float() / size)[:, None]).floor().long()
        return start[:, None] + torch.minimum(index, length[:, None] - 1)

    rows = sources(crops.top, crops.rows, height)[:, :, None]
    columns = sources(crops.left, crops.columns, width)[:, None, :]
    images = torch.arange(maps.shape[0], device=device)[:, None, None]
    if maps.dim() == 3:
        return maps[images, rows, columns]
    return maps.permute(0, 2, 3, 1)[images, rows, columns].permute(0, 3, 1, 2)


def flip_where(maps: Tensor, flipped: Tensor) -> Tensor:
    mask = flipped.view(-1, *[1] * (maps.dim() - 1))
    return torch.where(mask, maps.flip(-1), maps)


def apply_crops(batch: Batch, crops: Crops) -> Batch:
    """`batch` with every image and its dense targets cropped, resized and flipped alike."""
    targets = dict(batch.targets)
    inputs = flip_where(bilinear(batch.inputs, crops), crops.flipped)
    if "segmentation" in targets:
        targets["segmentation"] = flip_where(nearest(targets["segmentation"], crops), crops.flipped)
    if "depth" in targets:
        depth = targets["depth"]
        depth = nearest(depth, crops) / crops.scale.to(depth.dtype).view(-1, 1, 1, 1)
        targets["depth"] = flip_where(depth, crops.flipped)
    if "normal" in targets:
        normal = flip_where(bilinear(targets["normal"], crops), crops.flipped)
        # a flipped image's surfaces face the other way along x
        x_sign = torch.where(crops.flipped, -1.0, 1.0).view(-1, 1, 1, 1)
        targets["normal"] = torch.cat([normal[:, :1] * x_sign, normal[:, 1:]], dim=1)
    return Batch(inputs, targets, batch.incomplete)


def random_scale_crop(batch: Batch, scales: tuple[float, ...], flip: bool) -> Batch:
    """A training batch augmented as MTAN and LibMTL do (module docstring)."""
    height, width = batch.inputs.shape[-2:]
    crops = draw_crops(len(batch), (height, width), scales, flip, batch.inputs.device)
    return apply_crops(batch, crops)
