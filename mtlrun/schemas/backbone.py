"""The backbones' schemas (`backbone=NAME`, `backbone.KEY=...`): defaults and checks. Imports no
torch: composing a config, `--cfg job` and every refusal need only these."""

from dataclasses import dataclass, field

from mtlrun.config import check_each, check_range
from mtlrun.errors import ConfigError


@dataclass
class MLPConfig:
    """`backbone=mlp`: dense layers; the last hidden layer is the code the task heads share.
    Takes images (flattened) or vectors."""

    name: str
    hidden_dims: list[int] = field(default_factory=lambda: [256, 128])
    activation: str = "relu"
    dropout: float = 0.0  # after each dense layer

    def check(self, key: str) -> None:
        check_each(f"{key}.hidden_dims", self.hidden_dims, 1)
        check_range(f"{key}.dropout", self.dropout, 0, 1)


@dataclass
class DenseAEConfig:
    """`backbone=dense_ae`: a dense autoencoder, hidden layers then a linear code of
    `latent_dim`; its decoder mirrors the layers. Takes images (flattened) or vectors."""

    name: str
    hidden_dims: list[int] = field(default_factory=lambda: [512, 256])
    latent_dim: int = 32  # the code's width
    activation: str = "relu"

    def check(self, key: str) -> None:
        check_each(f"{key}.hidden_dims", self.hidden_dims, 1)
        check_range(f"{key}.latent_dim", self.latent_dim, 1)


@dataclass
class VAEConfig(DenseAEConfig):
    """`backbone=vae`: dense_ae's layers with a diagonal Gaussian code (the VAE of
    pytorch/examples by default: 400 hidden units, 20 latent dimensions)."""

    hidden_dims: list[int] = field(default_factory=lambda: [400])
    latent_dim: int = 20
    beta: float = 1.0  # weight of the KL term (β-VAE); 1 gives the ELBO

    def check(self, key: str) -> None:
        super().check(key)
        check_range(f"{key}.beta", self.beta, 0)


@dataclass
class CNNConfig:
    """`backbone=cnn`: conv-pool blocks, then dense layers; the last dense layer is the code the
    task heads share. The defaults, conv32-pool-conv64-pool-fc128, are the classic Keras
    CIFAR-10 classifier's shape."""

    name: str
    channels: list[int] = field(default_factory=lambda: [32, 64])  # one conv-pool block each
    kernel_size: int = 3
    # same | valid: "same" keeps each conv's size; "valid" shrinks the map by kernel_size - 1
    padding: str = "same"
    hidden_dims: list[int] = field(default_factory=lambda: [128])  # the dense layers after
    activation: str = "relu"
    dropout: float = 0.0  # after each dense layer of the trunk
    # Channel dropout (Dropout2d) on the last conv layer's output, before its activation and
    # pooling: the MultiLeNet of Sener & Koltun 2018 (0.5 there).
    conv_dropout: float = 0.0

    def check(self, key: str) -> None:
        check_conv_trunk(key, self.channels, self.kernel_size, self.hidden_dims)
        check_range(f"{key}.dropout", self.dropout, 0, 1)
        check_range(f"{key}.conv_dropout", self.conv_dropout, 0, 1)


@dataclass
class ConvVAEConfig:
    """`backbone=conv_vae`: the cnn's conv-pool and dense blocks, then a Gaussian latent (a VAE);
    its decoder mirrors them with up-convolutions."""

    name: str
    channels: list[int] = field(default_factory=lambda: [32, 64])  # one conv-pool block each
    kernel_size: int = 3
    # same | valid: "same" keeps each conv's size; "valid" shrinks the map by kernel_size - 1
    padding: str = "same"
    hidden_dims: list[int] = field(default_factory=lambda: [256])
    latent_dim: int = 16
    activation: str = "relu"
    beta: float = 1.0  # weight of the KL term (β-VAE); 1 gives the ELBO

    def check(self, key: str) -> None:
        check_conv_trunk(key, self.channels, self.kernel_size, self.hidden_dims)
        check_range(f"{key}.latent_dim", self.latent_dim, 1)
        check_range(f"{key}.beta", self.beta, 0)


def check_conv_trunk(
    key: str, channels: list[int], kernel_size: int, hidden_dims: list[int]
) -> None:
    if not channels:
        raise ConfigError(f"{key}.channels is empty; a conv backbone needs at least one, e.g. [32]")
    check_each(f"{key}.channels", channels, 1)
    check_range(f"{key}.kernel_size", kernel_size, 1)
    check_each(f"{key}.hidden_dims", hidden_dims, 1)


@dataclass
class ResNetDilatedConfig:
    """`backbone=resnet50_dilated`: torchvision's ResNet-50 with its last strides replaced by
    dilations (Yu et al. 2017), LibMTL's `resnet_dilated('resnet50')`: the task heads read the
    2048-channel map at 1/`dilate_scale` of the input's sides (the dense tasks' `head=aspp` is
    LibMTL's DeepLab head). ImageNet weights: `pretrained` downloads torchvision's
    IMAGENET1K_V1 (LibMTL's), `weights_file` reads a local copy of them."""

    name: str
    pretrained: bool = False
    weights_file: str | None = None  # a state dict of torchvision's resnet50 (.pth)
    dilate_scale: int = 8  # 8: layer3 and layer4 dilated (LibMTL's default); 16: layer4 only

    def check(self, key: str) -> None:
        if self.dilate_scale not in (8, 16):
            raise ConfigError(f"{key}.dilate_scale={self.dilate_scale} must be 8 or 16")
        if self.pretrained and self.weights_file:
            raise ConfigError(
                f"{key}.pretrained=true downloads the weights that {key}.weights_file reads; "
                "set one of them"
            )


@dataclass
class CIFARResNet18Config:
    """`backbone=cifar_resnet18`: the ResNet-18 of Sener & Koltun's CelebA model (their
    multi_faces_resnet.py, after kuangliu/pytorch-cifar): a 3×3 stem without max-pooling, four
    stages of two basic blocks, a 4×4 average pool, flattened (2048 features at 64×64).
    Trained from scratch, as theirs: ImageNet's weights fit a 7×7 stem."""

    name: str


@dataclass
class SegNetConfig:
    """`backbone=segnet`: the SegNet of MTAN's and LibMTL's NYUv2 experiments (Badrinarayanan et
    al. 2017, as Liu, Johns & Davison 2019 use it): encoder stages of 3×3 conv + batch norm +
    ReLU layers, each ending in 2×2 max pooling, and mirrored decoder stages that unpool with
    the encoder's pooling indices. Its code is the last decoder stage's feature map, at the
    input's resolution, with `channels[0]` channels. The defaults are the paper's widths;
    `channels=[16,32,64]` is a small one that trains on a CPU."""

    name: str
    channels: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 512])  # per stage
    # batch normalisation after every conv, as the paper; false drops it (a DDP run's ranks then
    # compute the same step as one process, which per-rank batch statistics do not)
    batch_norm: bool = True

    def check(self, key: str) -> None:
        if not self.channels:
            raise ConfigError(
                f"{key}.channels is empty; SegNet needs at least one stage, e.g. [16]"
            )
        check_each(f"{key}.channels", self.channels, 1)
