"""What the per-pixel tasks (segmentation, depth, normal) share: their heads on a per-pixel
backbone's feature map, and the check of their target.

The heads are LibMTL's NYUv2 example's (`examples/nyu/`): `conv`, a 3×3 convolution keeping the
width then a 1×1 convolution to the task's channels (MTAN's SegNet heads, `pred_task1..3` of
`im2im_pred/model_segnet_split.py`, with their Xavier-normal start), or `aspp`, DeepLab's atrous
spatial pyramid pooling (`mtlrun.tasks.aspp.ASPPHead`), LibMTL's head on the dilated ResNet-50.
A head whose map is smaller than the input (the ResNet's, at 1/8) is resized to the input's
height and width, bilinearly with aligned corners, as LibMTL's `process_preds` does.
"""

import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.data import Batch, DatasetInfo, TargetInfo
from mtlrun.errors import ConfigError
from mtlrun.schemas.task import DenseTaskConfig
from mtlrun.tasks.base import Task


def conv_head(channels: int, out_channels: int) -> nn.Sequential:
    head = nn.Sequential(
        nn.Conv2d(channels, channels, kernel_size=3, padding=1),
        nn.Conv2d(channels, out_channels, kernel_size=1),
    )
    for conv in head:
        nn.init.xavier_normal_(conv.weight)
        nn.init.zeros_(conv.bias)
    return head


class DenseHead(nn.Module):
    """A head on the feature map, its output at the input's height and width."""

    def __init__(self, net: nn.Module, size: tuple[int, int]) -> None:
        super().__init__()
        self.net = net
        self.size = size

    def forward(self, encoding: Encoding) -> Tensor:
        output = self.net(encoding.features)
        if tuple(output.shape[-2:]) != self.size:
            output = F.interpolate(output, self.size, mode="bilinear", align_corners=True)
        return output


class DenseTask(Task):
    """A task predicting `out_channels` values per pixel of the dataset's per-pixel target."""

    per_pixel = True
    target_kind = ""  # what `fits` accepts, for messages: "class map", "depth map"
    out_channels = 0  # the head's outputs per pixel (a segmentation's: set by `configure`)

    def __init__(self, cfg: DenseTaskConfig, name: str) -> None:
        super().__init__(name, cfg.weight)
        self.cfg = cfg
        self.target = cfg.target or name

    def fits(self, target: TargetInfo) -> bool:
        """Whether this task can predict `target` (a per-pixel target of the dataset)."""
        raise NotImplementedError

    def check(self, info: DatasetInfo, backbone: Backbone, tasks: list[Task]) -> None:
        fitting = [k for k, t in info.targets.items() if t.per_pixel and self.fits(t)]
        if self.target not in fitting:
            raise ConfigError(
                f"tasks.{self.name}: dataset={info.name} has no per-pixel {self.target_kind} "
                f"{self.target!r}; its {self.target_kind}s are: {', '.join(fitting) or 'none'}"
            )
        self.configure(info.targets[self.target])

    def configure(self, target: TargetInfo) -> None:
        """Take what the head needs to know from the target (the number of classes)."""

    def build_head(self, backbone: Backbone) -> nn.Module:
        make = conv_head
        if self.cfg.head == "aspp":  # imported only where used, like every part's torch code
            from mtlrun.tasks.aspp import ASPPHead

            make = ASPPHead
        height, width = backbone.input_shape[1:]
        return DenseHead(make(backbone.code_dim, self.out_channels), (height, width))

    def metric_sums(
        self, prediction: Tensor, encoding: Encoding, batch: Batch
    ) -> dict[str, Tensor]:
        """The batch's loss (a mean over its valid pixels) weighed by its examples; the
        task's metrics, which LibMTL takes over every valid pixel of a split, come from
        `split_state`."""
        return {"loss": self.loss(prediction, encoding, batch) * len(batch)}
