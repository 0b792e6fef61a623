"""Depth estimation: one depth per pixel, as LibMTL's NYUv2 and Cityscapes examples score it
(`examples/nyu/utils.py`: `DepthLoss`, `DepthMetric`).

A pixel whose target depth is 0 is invalid (no measurement) and counts nowhere. The loss is the
L1 error's mean over a batch's valid pixels; the metrics are the absolute error |d̂ − d| and the
relative error |d̂ − d| / d, each a mean over every valid pixel of the split. (LibMTL's
`DepthMetric` averages its per-batch means weighted by each batch's valid pixels, which is the
same mean.)
"""

from torch import Tensor

from mtlrun.backbones import Encoding
from mtlrun.data import Batch, TargetInfo
from mtlrun.parts import TASKS
from mtlrun.schemas.task import DepthConfig
from mtlrun.tasks.dense import DenseTask


@TASKS.register("depth", schema=DepthConfig)
class Depth(DenseTask):
    directions = {"loss": "min", "abs_err": "min", "rel_err": "min"}
    primary_metric = "abs_err"
    target_kind = "depth map"
    out_channels = 1

    def fits(self, target: TargetInfo) -> bool:
        return target.dim == 1

    def errors(self, prediction: Tensor, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """|d̂ − d| on the valid pixels and 0 elsewhere, the mask of valid pixels, and d with 1
        in place of the invalid 0 (a divisor)."""
        depth = batch.targets[self.target]
        valid = depth != 0
        return (prediction - depth).abs() * valid, valid, depth.masked_fill(~valid, 1)

    def loss(self, prediction: Tensor, encoding: Encoding, batch: Batch) -> Tensor:
        error, valid, _ = self.errors(prediction, batch)
        return error.sum() / valid.sum().clamp(min=1)

    def split_state(
        self, prediction: Tensor, encoding: Encoding, batch: Batch
    ) -> dict[str, Tensor]:
        error, valid, divisor = self.errors(prediction, batch)
        return {
            "abs_err": error.double().sum(),
            "rel_err": (error / divisor).double().sum(),
            "pixels": valid.double().sum(),
        }

    def split_metrics(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        pixels = state["pixels"].clamp(min=1)
        return {"abs_err": state["abs_err"] / pixels, "rel_err": state["rel_err"] / pixels}

    def pictures(self, prediction: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """Grey maps, nearer brighter, on one scale (the target's valid range); invalid target
        pixels black."""
        depth = batch.targets[self.target]
        valid = depth != 0
        low = depth.masked_fill(~valid, float("inf")).min()
        high = depth.masked_fill(~valid, float("-inf")).max()

        def grey(values: Tensor) -> Tensor:
            shade = 1 - (values - low) / (high - low).clamp(min=1e-6)
            return shade.clamp(0, 1).expand(-1, 3, -1, -1)

        return grey(depth) * valid, grey(prediction)
