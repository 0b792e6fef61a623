"""The ResNet backbones of the field's benchmarks and LibMTL's DeepLab head: the shapes the
heads read, the same network as the papers' code (LibMTL's dilation, Sener & Koltun's
ResNet-18, LibMTL's DeepLabHead, written out below as the references), ImageNet weights from a
local file, and one line when they can be neither read nor downloaded."""

import time
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from torch import nn
from torchvision.models import resnet18, resnet50

import mtlrun.backbones.resnet as resnet_module
from mtlrun.backbones import Encoding
from mtlrun.data import DatasetInfo, TargetInfo
from mtlrun.errors import ConfigError, UserError
from mtlrun.parts import BACKBONES, SHARING, TASKS
from mtlrun.tasks.aspp import ASPPHead
from mtlrun.tasks.dense import DenseHead

SCENES = DatasetInfo("nyuv2", (3, 64, 96), {"segmentation": TargetInfo(13, per_pixel=True)})
FACES = DatasetInfo("celeba", (3, 64, 64), {"Smiling": TargetInfo(2), "Male": TargetInfo(2)})


def backbone(name, info, **overrides):
    node = ConfigStore.instance().load(f"backbone/{name}.yaml").node
    return BACKBONES.build(name, OmegaConf.merge(node, overrides), "backbone", info)


def libmtl_nostride_dilate(m, dilate):
    """LibMTL/model/resnet_dilated.py, `ResnetDilated._nostride_dilate`."""
    if m.__class__.__name__.find("Conv") != -1:
        if m.stride == (2, 2):
            m.stride = (1, 1)
            if m.kernel_size == (3, 3):
                m.dilation = (dilate // 2, dilate // 2)
                m.padding = (dilate // 2, dilate // 2)
        elif m.kernel_size == (3, 3):
            m.dilation = (dilate, dilate)
            m.padding = (dilate, dilate)


def libmtl_resnet_dilated(dilate_scale):
    """LibMTL's `resnet_dilated('resnet50', dilate_scale)` and its forward."""
    network = resnet50(weights=None)
    if dilate_scale == 8:
        network.layer3.apply(partial(libmtl_nostride_dilate, dilate=2))
        network.layer4.apply(partial(libmtl_nostride_dilate, dilate=4))
    else:
        network.layer4.apply(partial(libmtl_nostride_dilate, dilate=2))

    def forward(x):
        x = network.maxpool(network.relu(network.bn1(network.conv1(x))))
        return network.layer4(network.layer3(network.layer2(network.layer1(x))))

    return network, forward


@pytest.mark.parametrize("dilate_scale", [8, 16])
def test_resnet50_dilated_is_libmtls_and_gives_the_heads_a_2048_channel_map(dilate_scale):
    net = backbone("resnet50_dilated", SCENES, dilate_scale=dilate_scale).eval()
    reference, reference_forward = libmtl_resnet_dilated(dilate_scale)
    reference.eval()
    ours = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    theirs = [m for m in reference.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.stride, m.dilation, m.padding) for m in ours] == [
        (m.stride, m.dilation, m.padding) for m in theirs
    ]
    # the reference's weights, in the same order under the blocks' names (its fc aside)
    weights = [v for k, v in reference.state_dict().items() if not k.startswith("fc.")]
    net.load_state_dict(dict(zip(net.state_dict(), weights, strict=True)))
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        features = net.encode(x).features
        expected = reference_forward(x)
    assert features.shape == (2, 2048, 64 // dilate_scale, 96 // dilate_scale)
    assert net.code_dim == 2048 and len(net.blocks) == 5
    torch.testing.assert_close(features, expected)


def test_cifar_resnet18_is_sener_and_koltuns_celeba_trunk():
    net = backbone("cifar_resnet18", FACES)
    features = net.encode(torch.rand(3, 3, 64, 64)).features
    assert features.shape == (3, 2048) and net.code_dim == 2048  # FaceAttributeDecoder's 2048
    stem = net.blocks[0].layers[0]
    assert (stem.kernel_size, stem.stride, stem.padding) == ((3, 3), (1, 1), (1, 1))
    # their ResNet(BasicBlock, [2, 2, 2, 2]): torchvision's resnet18 with a 3×3 stem, no fc
    torchvision = resnet18(weights=None)
    expected = sum(p.numel() for p in torchvision.parameters())
    expected += 3 * 64 * 9 - torchvision.conv1.weight.numel() - 512 * 1000 - 1000
    assert sum(p.numel() for p in net.parameters()) == expected


def test_resnets_refuse_grey_images_and_a_decoder():
    with pytest.raises(ConfigError, match="backbone=cifar_resnet18 takes RGB images"):
        backbone("cifar_resnet18", DatasetInfo("mnist", (1, 28, 28), {}))
    with pytest.raises(ConfigError, match="has no decoder, so a reconstruction task"):
        backbone("cifar_resnet18", FACES).make_decoder()
    with pytest.raises(ConfigError, match="images need sides of at least 25 pixels"):
        backbone("cifar_resnet18", DatasetInfo("celeba", (3, 16, 16), {}))


def test_imagenet_weights_load_from_a_local_file(tmp_path):
    torch.manual_seed(1)
    weights = resnet50(weights=None).state_dict()
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(weights, path)
    net = backbone("resnet50_dilated", SCENES, weights_file=str(path))
    assert torch.equal(net.blocks[0].layers[0].weight, weights["conv1.weight"])
    assert torch.equal(net.blocks[4][2].conv3.weight, weights["layer4.2.conv3.weight"])


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "does not exist"),
        (b"not a checkpoint", "is not a PyTorch state dict that can be read"),
        ("resnet18", "is not ResNet-50's weights"),
        ("list", "holds no state dict of tensors"),
    ],
    ids=["missing", "garbage", "another-network", "not-a-state-dict"],
)
def test_a_weights_file_that_is_not_resnet50s_is_one_line(tmp_path, content, words):
    path = tmp_path / "weights.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "resnet18":
        torch.save(resnet18(weights=None).state_dict(), path)
    elif content == "list":
        torch.save([1, 2], path)
    with pytest.raises(UserError) as error:
        backbone("resnet50_dilated", SCENES, weights_file=str(path))
    assert words in str(error.value) and "\n" not in str(error.value)


def test_offline_without_weights_is_one_line_and_does_not_hang(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached copy
    # a port nothing listens on: refused at once, as a machine without network is
    monkeypatch.setattr(resnet_module, "IMAGENET_URL", "http://127.0.0.1:9/resnet50-0676ba61.pth")
    started = time.perf_counter()
    with pytest.raises(UserError) as error:
        backbone("resnet50_dilated", SCENES, pretrained=True)
    assert time.perf_counter() - started < resnet_module.DOWNLOAD_TIMEOUT
    message = str(error.value)
    assert message.startswith("backbone.pretrained=true: the ImageNet weights could not be")
    assert "set backbone.weights_file=PATH" in message and "\n" not in message


def test_pretrained_and_a_weights_file_together_are_refused():
    with pytest.raises(ConfigError, match="set one of them"):
        BACKBONES.config(
            "resnet50_dilated",
            {"name": "resnet50_dilated", "pretrained": True, "weights_file": "w.pth"},
            "backbone",
        )


class LibMTLDeepLabHead(nn.Sequential):
    """LibMTL/model/decoder/DeepLabHead.py: `DeepLabHead`, `ASPP`, `ASPPConv`, `ASPPPooling`."""

    def __init__(self, input_channels, output_channels, img_size):
        def aspp_conv(c_in, c_out, dilation):
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
            )

        class ASPPPooling(nn.Sequential):
            def __init__(self, c_in, c_out):
                super().__init__(
                    nn.AdaptiveAvgPool2d(1),
                    nn.Conv2d(c_in, c_out, 1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(),
                )

            def forward(self, x):
                size = x.shape[-2:]
                x = super().forward(x)
                return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

        class ASPP(nn.Module):
            def __init__(self, c_in, rates):
                super().__init__()
                modules = [
                    nn.Sequential(
                        nn.Conv2d(c_in, 256, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU()
                    )
                ]
                modules += [aspp_conv(c_in, 256, r) for r in rates]
                modules.append(ASPPPooling(c_in, 256))
                self.convs = nn.ModuleList(modules)
                self.project = nn.Sequential(
                    nn.Conv2d(5 * 256, 256, 1, bias=False),
                    nn.BatchNorm2d(256),
                    nn.ReLU(),
                    nn.Dropout(0.5),
                )

            def forward(self, x):
                return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))

        super().__init__(
            ASPP(input_channels, [12, 24, 36]),
            nn.Conv2d(256, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(),
            nn.Conv2d(256, output_channels, 1),
        )
        self.img_size = img_size

    def forward(self, x):
        x = super().forward(x)
        return F.interpolate(x, self.img_size, mode="bilinear", align_corners=True)


def test_the_aspp_head_is_libmtls_deeplab_head():
    torch.manual_seed(0)
    ours = DenseHead(ASPPHead(64, 13), (40, 48)).eval()  # as `head=aspp` builds it
    reference = LibMTLDeepLabHead(64, 13, (40, 48)).eval()
    reference.load_state_dict(ours.net.state_dict())  # the same modules under the same names
    features = torch.randn(2, 64, 5, 6)
    with torch.no_grad():
        out = ours(Encoding(features=features, z=features))
        torch.testing.assert_close(out, reference(features))
    assert out.shape == (2, 13, 40, 48)


@pytest.mark.parametrize(
    ("sharing", "overrides"),
    [
        ("hard", {}),
        ("hard", {"shared_layers": 3}),
        ("single_task", {}),
        ("cross_stitch", {}),
        ("mmoe", {"num_experts": 2}),
    ],
    ids=["hard", "hard-split", "single_task", "cross_stitch", "mmoe"],
)
def test_the_sharing_strategies_split_and_mix_the_resnet_blocks(sharing, overrides):
    tasks = []
    for name in ("Smiling", "Male"):
        node = OmegaConf.merge(ConfigStore.instance().load("task/classification.yaml").node, {})
        task = TASKS.get("classification")(TASKS.config("classification", node, name), name)
        task.check(FACES, None, [])
        tasks.append(task)
    node = OmegaConf.merge(ConfigStore.instance().load(f"sharing/{sharing}.yaml").node, overrides)
    config = SHARING.config(sharing, node, "sharing")
    model = SHARING.get(sharing)(config, lambda: backbone("cifar_resnet18", FACES), tasks)
    output = model(torch.rand(4, 3, 64, 64))
    assert {k: v.shape for k, v in output.predictions.items()} == {
        "Smiling": (4, 2),
        "Male": (4, 2),
    }
