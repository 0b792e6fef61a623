"""The DeepLab head of LibMTL's NYUv2 and Cityscapes examples (LibMTL/model/decoder/
DeepLabHead.py; Atrous Spatial Pyramid Pooling, Chen et al., "Rethinking Atrous Convolution for
Semantic Image Segmentation", 2017, and DeepLabv3+, ECCV 2018): ASPP with rates 12, 24 and 36
and 256 channels, a 3×3 convolution, a 1×1 convolution to the task's channels, and a bilinear
upsampling (aligned corners) to the input's size. The modules are laid out as LibMTL's, so its
trained heads' state dicts load here."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CHANNELS = 256
RATES = (12, 24, 36)


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int, dilation: int = 1) -> list:
    padding = dilation if kernel == 3 else 0
    conv = nn.Conv2d(
        in_channels, out_channels, kernel, padding=padding, dilation=dilation, bias=False
    )
    return [conv, nn.BatchNorm2d(out_channels), nn.ReLU()]


class ASPPPooling(nn.Sequential):
    """The image-level branch: global average, 1×1 convolution, spread back over the map."""

    def __init__(self, in_channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), *conv_bn_relu(in_channels, CHANNELS, 1))

    def forward(self, x: Tensor) -> Tensor:
        pooled = super().forward(x)
        return F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Five parallel branches (1×1, three dilated 3×3, image pooling), concatenated and
    projected to 256 channels, then dropout 0.5."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        branches = [nn.Sequential(*conv_bn_relu(in_channels, CHANNELS, 1))]
        branches += [nn.Sequential(*conv_bn_relu(in_channels, CHANNELS, 3, r)) for r in RATES]
        self.convs = nn.ModuleList([*branches, ASPPPooling(in_channels)])
        self.project = nn.Sequential(
            *conv_bn_relu(len(self.convs) * CHANNELS, CHANNELS, 1), nn.Dropout(0.5)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class ASPPHead(nn.Sequential):
    """A dense task's head on a feature map (N×in_channels×h×w): logits or values
    N×out_channels×h×w (the dense tasks' `DenseHead` upsamples them to the input's size,
    bilinearly with aligned corners, as LibMTL's head does)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            ASPP(in_channels),
            *conv_bn_relu(CHANNELS, CHANNELS, 3),
            nn.Conv2d(CHANNELS, out_channels, 1),
        )
