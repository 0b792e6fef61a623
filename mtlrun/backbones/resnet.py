"""ResNet backbones of the field's benchmarks, as blocks the sharing strategies can split and mix:

- `resnet50_dilated`: the encoder of LibMTL's NYUv2 and Cityscapes examples
  (`LibMTL.model.resnet_dilated('resnet50')`, the dilated residual network of Yu, Koltun &
  Funkhouser, CVPR 2017): torchvision's ResNet-50 whose last strides are dilations, so the heads
  read a 2048-channel map at 1/8 of the input's sides. torchvision's
  `replace_stride_with_dilation` dilates exactly as LibMTL's `_nostride_dilate` does.
- `cifar_resnet18`: the ResNet-18 of Sener & Koltun's CelebA model (NeurIPS 2018,
  multi_task/models/multi_faces_resnet.py): a 3×3 stem and no max-pooling, then a 4×4 average
  pool, flattened, which the attribute heads read.

Both have batch normalisation, as the papers' networks do.
"""

import math
import socket
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import ResNet50_Weights, resnet18, resnet50

from mtlrun.backbones.base import Backbone, FeatureLatent
from mtlrun.data import DatasetInfo
from mtlrun.errors import ConfigError, UserError
from mtlrun.parts import BACKBONES
from mtlrun.schemas.backbone import CIFARResNet18Config, ResNetDilatedConfig

# torchvision's ImageNet weights of ResNet-50 (IMAGENET1K_V1, 76.1 % top-1): those LibMTL loads
IMAGENET_URL = ResNet50_Weights.IMAGENET1K_V1.url
DOWNLOAD_TIMEOUT = 30  # seconds without an answer before a download counts as offline


class Stem(nn.Module):
    """A ResNet's layers before its first stage. Its own class, not a Sequential starting with
    a convolution, so that MTAN's conv-block attention does not take it for a `cnn` block."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class ResidualStage(nn.Sequential):
    """A ResNet stage (torchvision's `layer1` to `layer4`), its residual blocks in sequence. For
    MTAN it splits as LibMTL's ResNet-MTAN does (`LibMTL/architecture/MTAN.py`): the attention
    mask reads the output of every block but the last and gates the stage's output."""

    def __init__(self, *blocks: nn.Module) -> None:
        super().__init__(*blocks)  # also Sequential's OrderedDict form, which slicing uses
        last = self[-1]
        self.block_type = type(last)  # torchvision's Bottleneck or BasicBlock
        self.out_channels = (last.bn3 if hasattr(last, "bn3") else last.bn2).num_features

    def gated(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """What MTAN's mask reads (the stage before its last block), what it gates (the stage's
        output), and the stage's output."""
        read = self[:-1](h)
        output = self[-1](read)
        return read, output, output


class PooledFeatures(nn.Module):
    """Sener & Koltun's end of the trunk: a 4×4 average pool, flattened."""

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.avg_pool2d(x, 4).flatten(1)


def no_decoder(name: str):
    def refuse() -> nn.Module:
        raise ConfigError(
            f"backbone={name} has no decoder, so a reconstruction task cannot read it; use "
            "backbone=cnn or conv_vae for reconstruction"
        )

    return refuse


def imagenet_weights(cfg: ResNetDilatedConfig) -> dict[str, Tensor]:
    """torchvision's ResNet-50 ImageNet state dict, from `weights_file` or downloaded (into
    torch's hub cache, where a second run finds it)."""
    if cfg.weights_file:
        path = Path(cfg.weights_file).expanduser()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise UserError(f"backbone.weights_file={path} does not exist") from None
        except Exception as error:  # not a torch file, cut off, or pickled code
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise UserError(
                f"backbone.weights_file={path} is not a PyTorch state dict that can be read "
                f"({reason}); download {IMAGENET_URL} and point it there"
            ) from None
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise UserError(
                f"backbone.weights_file={path} holds no state dict of tensors; use "
                f"torchvision's ResNet-50 weights, {IMAGENET_URL}"
            )
        return state
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # urllib would wait for ever on a silent network
    try:
        return torch.hub.load_state_dict_from_url(IMAGENET_URL, progress=False, check_hash=True)
    except Exception as error:  # no network, a proxy's refusal, a cut-off download
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"backbone.pretrained=true: the ImageNet weights could not be downloaded from "
            f"{IMAGENET_URL} ({reason}); download that file elsewhere and set "
            "backbone.weights_file=PATH, or train from scratch with backbone.pretrained=false"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def load_imagenet(network: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """`state` into `network`, every trunk weight present and of its shape (the classifier
    `fc` is dropped)."""
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        result = network.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a tensor of another shape
        detail = next((line.strip() for line in str(error).splitlines()[1:]), str(error))
        raise UserError(f"{source} is not ResNet-50's weights ({detail})") from None
    wrong = [k for k in result.missing_keys if not k.startswith("fc.")] + result.unexpected_keys
    if wrong:
        raise UserError(
            f"{source} is not ResNet-50's weights: {len(wrong)} keys missing or foreign, "
            f"e.g. {wrong[0]!r}"
        )


@BACKBONES.register("resnet50_dilated", schema=ResNetDilatedConfig)
def resnet50_dilated(cfg: ResNetDilatedConfig, info: DatasetInfo) -> Backbone:
    check_rgb("resnet50_dilated", info)
    dilate = [False, True, True] if cfg.dilate_scale == 8 else [False, False, True]
    network = resnet50(weights=None, replace_stride_with_dilation=dilate)
    if cfg.pretrained or cfg.weights_file:
        source = f"backbone.weights_file={cfg.weights_file}" if cfg.weights_file else IMAGENET_URL
        load_imagenet(network, imagenet_weights(cfg), source)
    blocks = [
        Stem(network.conv1, network.bn1, network.relu, network.maxpool),
        *stages(network),
    ]
    return Backbone(
        info.input_shape,
        blocks,
        FeatureLatent(),
        2048,
        no_decoder("resnet50_dilated"),
        normalization=info.normalization,
        per_pixel=True,  # the heads read the feature map (LibMTL's DeepLab heads)
    )


@BACKBONES.register("cifar_resnet18", schema=CIFARResNet18Config)
def cifar_resnet18(cfg: CIFARResNet18Config, info: DatasetInfo) -> Backbone:
    check_rgb("cifar_resnet18", info)
    _, height, width = info.input_shape
    # Three stride-2 stages (each side becomes ceil(side / 2)), then the 4×4 pool.
    side = [math.ceil(s / 8) // 4 for s in (height, width)]
    if min(side) < 1:
        raise ConfigError(
            f"backbone=cifar_resnet18 pools a 1/8-size map 4×4, so images need sides of at least "
            f"25 pixels, not {height}×{width}; use dataset.image_size=64 (Sener & Koltun's)"
        )
    network = resnet18(weights=None)  # torchvision's basic blocks are those of their code
    stem = Stem(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
    blocks = [stem, *stages(network)]
    return Backbone(
        info.input_shape,
        [*blocks, PooledFeatures()],
        FeatureLatent(),
        512 * side[0] * side[1],
        no_decoder("cifar_resnet18"),
        normalization=info.normalization,
    )


def stages(network: nn.Module) -> list[ResidualStage]:
    return [ResidualStage(*getattr(network, f"layer{k}")) for k in (1, 2, 3, 4)]


def check_rgb(name: str, info: DatasetInfo) -> None:
    if not info.is_image or info.input_shape[0] != 3:
        raise ConfigError(
            f"backbone={name} takes RGB images, but dataset={info.name} gives inputs of shape "
            f"{info.input_shape}; use backbone=cnn"
        )
