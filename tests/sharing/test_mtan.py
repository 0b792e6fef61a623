"""MTAN: a soft attention mask per task over the shared trunk's features at every block (a
CNN's conv blocks, SegNet's encoder and decoder stages)."""

import pytest
import torch
import torch.nn.functional as F

from mtlrun.backbones import Backbone
from mtlrun.backbones.base import FeatureLatent
from mtlrun.backbones.resnet import ResidualStage, cifar_resnet18, resnet50_dilated
from mtlrun.backbones.segnet import segnet
from mtlrun.data import DatasetInfo, TargetInfo
from mtlrun.experiment import build
from mtlrun.lifecycle import train
from mtlrun.schemas.backbone import CIFARResNet18Config, ResNetDilatedConfig, SegNetConfig
from mtlrun.schemas.sharing import MTANConfig
from mtlrun.schemas.task import ClassificationConfig, DepthConfig
from mtlrun.sharing.mtan import mtan
from mtlrun.tasks.classification import Classification
from mtlrun.tasks.depth import Depth
from tests.conftest import TINY, compose_config
from tests.sharing import SMALL, assert_learns, config_error

CNN = [
    *TINY,
    "optim.lr=3e-3",
    "trainer.epochs=3",
    "backbone=cnn",
    "backbone.channels=[4,8]",
    "backbone.hidden_dims=[16]",
    "+task@tasks.class=classification",
    "sharing=mtan",
]


def test_each_task_masks_the_shared_features_block_by_block():
    model = build(compose_config(CNN)).model
    x = torch.rand(3, 1, 28, 28)
    output = model(x)
    reads, (p1, p2), _ = model.shared_features(x)
    assert reads[0] is p1 and reads[1] is p2  # a cnn block's mask reads what it gates
    assert [f.shape for f in output.shared] == [p1.shape, p2.shape]  # the cut: the trunk's maps
    attention = model.attention["class"]
    mask1 = attention.masks[0](p1)
    assert ((mask1 > 0) & (mask1 < 1)).all()  # soft: a sigmoid per feature
    attended1 = F.max_pool2d(mask1 * p1, 2)  # â¹ = pool(a¹ ⊙ p₁)
    mask2 = attention.masks[1](torch.cat([p2, attention.carry[0](attended1)], dim=1))
    h = F.max_pool2d(mask2 * p2, 2)  # â² = pool(g([p₂ ; f(â¹)]) ⊙ p₂)
    for block in attention.dense:
        h = block(h)
    torch.testing.assert_close(output.encodings["class"].features, attention.latent(h).features)


def test_with_its_masks_open_a_task_reads_the_shared_trunk_as_hard_sharing_does():
    cfg = compose_config(CNN)
    model = build(cfg).model
    hard = build(compose_config([*CNN, "sharing=hard"])).model  # the same seed: same trunk
    with torch.no_grad():
        for mask in model.attention["class"].masks:
            mask[-2].weight.zero_()
            mask[-2].bias.fill_(100.0)  # sigmoid(100) = 1: every feature passes
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(model.encode("class", x).features, hard.backbone.encode(x).features)


def test_the_trunk_is_shared_and_each_task_has_its_own_dense_copy():
    model = build(compose_config(CNN)).model
    recon, cls = model.attention["reconstruction"], model.attention["class"]
    assert recon.dense[0] is not cls.dense[0]
    # copies: they start from the same weights
    torch.testing.assert_close(recon.dense[0][1].weight, cls.dense[0][1].weight)
    assert len(model.backbone.blocks) == 2  # the conv blocks only


@pytest.mark.slow  # a long training, to show that it learns
def test_mtan_learns(run_dir):
    faster = ["optim.lr=1e-2", "trainer.batch_size=32", "trainer.epochs=4"]
    train(compose_config([*CNN, *faster, "weighting=upgrad"]), run_dir)
    assert_learns(run_dir)


def test_mtan_needs_a_conv_trunk():
    message = config_error([*SMALL, "+task@tasks.class=classification", "sharing=mtan"])
    assert message == (
        "sharing=mtan puts attention masks on a conv trunk's feature maps; use backbone=cnn, "
        "segnet, resnet50_dilated or cifar_resnet18"
    )


def test_on_segnet_each_task_attends_over_encoder_and_decoder_stages():
    """SegNet-MTAN: the masks gate each encoder stage's map before pooling (then pooled), and
    each decoder stage's output, the attended map upsampled bilinearly before f."""
    info = DatasetInfo("d", (1, 8, 8), {"depth": TargetInfo(dim=1, per_pixel=True)})
    task = Depth(DepthConfig(type="depth"), "depth")

    def make_backbone() -> Backbone:
        return segnet(SegNetConfig(name="segnet", channels=[4, 8]), info)

    task.check(info, make_backbone(), [task])
    torch.manual_seed(0)
    model = mtan(MTANConfig(name="mtan"), make_backbone, [task]).eval()
    x = torch.rand(2, 1, 8, 8)
    reads, features, sizes = model.shared_features(x)
    assert all(r is p for r, p in zip(reads, features, strict=True))
    assert [tuple(p.shape[1:]) for p in features] == [(4, 8, 8), (8, 4, 4), (4, 4, 4), (4, 8, 8)]
    assert [tuple(size) for size in sizes] == [(4, 4), (2, 2), (4, 4), (8, 8)]
    attention = model.attention["depth"]
    attended = F.max_pool2d(attention.masks[0](features[0]) * features[0], 2)
    for j in (1, 2, 3):
        p = features[j]
        if attended.shape[-1] < p.shape[-1]:
            attended = F.interpolate(
                attended, size=p.shape[-2:], mode="bilinear", align_corners=True
            )
        mask = attention.masks[j](torch.cat([p, attention.carry[j - 1](attended)], dim=1))
        attended = mask * p
        if attended.shape[-2:] != sizes[j]:
            attended = F.max_pool2d(attended, 2)
    torch.testing.assert_close(model(x).encodings["depth"].features, attended)
    assert isinstance(attention.latent, FeatureLatent) and len(attention.dense) == 0


def test_on_a_resnet_each_task_attends_over_its_stages_as_libmtl_does():
    """LibMTL's ResNet-MTAN (`_transform_resnet_MTAN.forward`), written out as the reference:
    the stem is shared and not attended; at stage i the mask reads the stage before its last
    residual block and gates the stage's output; f, a residual block, carries the attended map
    to the next stage's channels, max-pooled by 2 where that stage halves the map."""
    info = DatasetInfo("faces", (3, 32, 32), {"Smiling": TargetInfo(2), "Male": TargetInfo(2)})
    tasks = [Classification(ClassificationConfig(type="classification"), n) for n in info.targets]

    def make_backbone() -> Backbone:
        return cifar_resnet18(CIFARResNet18Config(name="cifar_resnet18"), info)

    for task in tasks:
        task.check(info, make_backbone(), tasks)
    torch.manual_seed(0)
    model = mtan(MTANConfig(name="mtan"), make_backbone, tasks).eval()
    stem, *stages = model.backbone.blocks
    assert all(isinstance(stage, ResidualStage) for stage in stages) and len(stages) == 4
    x = torch.rand(2, 3, 32, 32)
    output = model(x)
    for name in ("Smiling", "Male"):
        attention, h, attended = model.attention[name], stem(x), None
        for i, stage in enumerate(stages):
            read = stage[:-1](h)
            h = stage[-1](read)
            if i == 0:
                mask = attention.masks[0](read)
            else:
                carried = attention.carry[i - 1](attended)
                if carried.shape[-2:] != read.shape[-2:]:
                    carried = F.max_pool2d(carried, 2)  # LibMTL's down_sampling
                mask = attention.masks[i](torch.cat([read, carried], dim=1))
            attended = mask * h
        (pool,) = attention.dense  # the end of Sener & Koltun's trunk, the task's own
        torch.testing.assert_close(output.encodings[name].features, pool(attended))
    # The cut aggregators work on: every stage's read and gated maps, each tensor once.
    assert len(output.shared) == 2 * len(stages)
    assert len({id(t) for t in output.shared}) == len(output.shared)


def test_mtan_on_the_dilated_resnet50_keeps_libmtls_widths():
    """f before each stage is a bottleneck block of the stage's width with a 1×1 projection, and
    a mask's inner width is the stage's bottleneck width (LibMTL's `_att_layer`, `_conv_layer`);
    each task's attended map is the 2048-channel map at 1/8 of the input's sides."""
    info = DatasetInfo("nyuv2", (3, 32, 48), {"depth": TargetInfo(dim=1, per_pixel=True)})
    task = Depth(DepthConfig(type="depth"), "depth")

    def make_backbone() -> Backbone:
        return resnet50_dilated(ResNetDilatedConfig(name="resnet50_dilated"), info)

    task.check(info, make_backbone(), [task])
    model = mtan(MTANConfig(name="mtan"), make_backbone, [task]).eval()
    attention = model.attention["depth"]
    channels = [256, 512, 1024, 2048]
    assert [mask[0].in_channels for mask in attention.masks] == [256, 1024, 2048, 4096]
    assert [mask[0].out_channels for mask in attention.masks] == [64, 128, 256, 512]
    assert [mask[2].out_channels for mask in attention.masks] == channels
    for carry, c_in, c_out in zip(attention.carry, channels[:-1], channels[1:], strict=True):
        assert (carry.conv1.in_channels, carry.conv2.in_channels) == (c_in, c_out // 4)
        assert (carry.conv3.out_channels, carry.downsample[0].out_channels) == (c_out, c_out)
    with torch.no_grad():
        encoding = model(torch.rand(1, 3, 32, 48)).encodings["depth"]
    assert encoding.features.shape == (1, 2048, 4, 6)
