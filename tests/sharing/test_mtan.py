"""MTAN: a soft attention mask per task over the shared trunk's features at every block (a
CNN's conv blocks, SegNet's encoder and decoder stages)."""

import pytest
import torch
import torch.nn.functional as F

from mtlrun.backbones import Backbone
from mtlrun.backbones.base import FeatureLatent
from mtlrun.backbones.segnet import segnet
from mtlrun.data import DatasetInfo, TargetInfo
from mtlrun.experiment import build
from mtlrun.lifecycle import train
from mtlrun.schemas.backbone import SegNetConfig
from mtlrun.schemas.sharing import MTANConfig
from mtlrun.schemas.task import DepthConfig
from mtlrun.sharing.mtan import mtan
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
    (p1, p2), _ = model.shared_features(x)
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
        "sharing=mtan puts attention masks on a conv trunk's feature maps; use backbone=cnn "
        "or backbone=segnet"
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
    features, sizes = model.shared_features(x)
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
