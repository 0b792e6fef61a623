"""SegNet as MTAN builds it: its layers, its unpooling with the encoder's indices, and its
stages as blocks that sharing strategies split and mix."""

import pytest
import torch
import torch.nn.functional as F

from mtlrun.backbones.segnet import segnet, unpool
from mtlrun.data import DatasetInfo, TargetInfo
from mtlrun.errors import ConfigError
from mtlrun.schemas.backbone import SegNetConfig
from mtlrun.schemas.sharing import CrossStitchConfig, SharedLayersConfig
from mtlrun.schemas.task import DepthConfig, NormalConfig
from mtlrun.sharing.cross_stitch import cross_stitch
from mtlrun.sharing.hard import hard
from mtlrun.tasks.depth import Depth
from mtlrun.tasks.normal import Normal

INFO = DatasetInfo(
    "d",
    (3, 32, 32),
    {"depth": TargetInfo(dim=1, per_pixel=True), "normal": TargetInfo(dim=3, per_pixel=True)},
)


def build(channels: list[int], batch_norm: bool = True):
    return segnet(SegNetConfig(name="segnet", channels=channels, batch_norm=batch_norm), INFO)


def mtan_segnet_parameters(filters: list[int]) -> int:
    """The parameters of MTAN's SegNet trunk (lorenmt/mtan, im2im_pred/model_segnet_split.py:
    encoder_block, decoder_block, conv_block_enc, conv_block_dec; each conv_layer a 3×3 conv
    and a batch norm), written out from its definitions for 5 stages."""

    def conv_layer(c_in: int, c_out: int) -> int:
        return c_in * c_out * 9 + c_out + 2 * c_out

    f = filters
    total = conv_layer(3, f[0]) + conv_layer(f[0], f[0])  # encoder_block[0], decoder_block[0]
    for i in range(4):
        total += conv_layer(f[i], f[i + 1]) + conv_layer(f[i + 1], f[i])
    total += 2 * conv_layer(f[0], f[0])  # conv_block_enc[0], conv_block_dec[0]
    for i in range(4):
        convs = 1 if i == 0 else 2
        total += convs * (conv_layer(f[i + 1], f[i + 1]) + conv_layer(f[i], f[i]))
    return total


def test_the_default_is_mtans_segnet_and_its_code_a_map_at_the_inputs_resolution():
    backbone = build([64, 128, 256, 512, 512])
    assert sum(p.numel() for p in backbone.parameters()) == mtan_segnet_parameters(
        [64, 128, 256, 512, 512]
    )
    assert len(backbone.blocks) == 10 and backbone.per_pixel and backbone.code_dim == 64
    small = build([4, 8, 16])
    encoding = small.encode(torch.rand(2, 3, 32, 32))
    assert encoding.features.shape == (2, 4, 32, 32)


def test_a_decoder_stage_unpools_with_its_encoder_stages_indices():
    backbone = build([4, 8], batch_norm=False)
    x = torch.rand(2, 3, 32, 32)
    first, second, up_second, up_first = backbone.blocks
    before_pool = first.convs(x)
    pooled, indices = F.max_pool2d(before_pool, 2, return_indices=True)
    h = second(first(x))
    assert torch.equal(h.carried[0], indices)
    inner = up_second(h)
    expected = up_first.convs(F.max_unpool2d(inner.features, indices, 2))
    torch.testing.assert_close(up_first(inner), expected)


def test_unpooling_is_torchs_max_unpool_and_runs_deterministically():
    features = torch.randn(2, 3, 8, 6)
    pooled, indices = F.max_pool2d(features, 2, return_indices=True)
    torch.testing.assert_close(unpool(pooled, indices), F.max_unpool2d(pooled, indices, 2))
    torch.use_deterministic_algorithms(True)
    try:
        build([4, 8]).encode(torch.rand(2, 3, 32, 32)).features.sum().backward()
    finally:
        torch.use_deterministic_algorithms(False)


def test_image_sides_must_halve_at_every_stage():
    with pytest.raises(ConfigError, match="must be divisible by 64, not 32×32"):
        build([4, 4, 4, 4, 4, 4])


def tasks():
    depth, normal = (
        Depth(DepthConfig(type="depth"), "depth"),
        Normal(NormalConfig(type="normal"), "normal"),
    )
    for task in (depth, normal):
        task.check(INFO, build([4, 8]), [depth, normal])
    return [depth, normal]


def test_hard_sharing_splits_segnet_between_its_encoder_and_decoder():
    torch.manual_seed(0)
    model = hard(SharedLayersConfig(name="hard", shared_layers=2), lambda: build([4, 8]), tasks())
    model.eval()
    x = torch.rand(2, 3, 32, 32)
    output = model(x)
    # the cut: the encoder's output, shared; each task's decoder copy starts as the original
    assert output.shared[0].shape == (2, 8, 8, 8)
    torch.testing.assert_close(
        output.encodings["depth"].features, output.encodings["normal"].features
    )
    network = model.networks["depth"]
    assert network.blocks[0] is model.networks["normal"].blocks[0]
    assert network.blocks[2] is not model.networks["normal"].blocks[2]


def test_cross_stitch_mixes_the_features_and_keeps_each_networks_indices():
    torch.manual_seed(0)
    model = cross_stitch(
        CrossStitchConfig(name="cross_stitch", stitch_after=[0]), lambda: build([4, 8]), tasks()
    )
    model.eval()
    with torch.no_grad():
        model.mixers["0"].alpha.copy_(torch.eye(2))  # no mixing: each network on its own
    x = torch.rand(2, 3, 32, 32)
    encodings, _ = model.encode_all(x)
    for name, network in model.networks.items():
        torch.testing.assert_close(encodings[name].features, network.encode(x).features)
