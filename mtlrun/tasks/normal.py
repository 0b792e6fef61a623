"""Surface normal estimation: a unit vector per pixel, as LibMTL's NYUv2 example scores it
(`examples/nyu/utils.py`: `NormalLoss`, `NormalMetric`).

The prediction is normalised to unit length; a pixel whose target is the zero vector is invalid
and counts nowhere (LibMTL tests that the target's components do not sum to 0, which also drops
the rare unit normals whose components do; here a pixel is invalid only when all three are 0).
The loss is 1 − the cosine between prediction and target, its mean over a batch's valid pixels.
The metrics are over the angle errors θ = arccos(n̂ · n), in degrees, of every valid pixel of
the split (all of them are kept: the median needs them): their mean, their median (of an even
count, the mean of the middle two, as NumPy's) and the shares within 11.25°, 22.5° and 30°.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlrun.backbones import Encoding
from mtlrun.data import Batch, TargetInfo
from mtlrun.parts import TASKS
from mtlrun.schemas.task import NormalConfig
from mtlrun.tasks.dense import DenseTask

WITHIN = {"within_11.25": 11.25, "within_22.5": 22.5, "within_30": 30.0}


def median(values: Tensor) -> Tensor:
    """NumPy's median: of an even count, the mean of the two middle values (torch's gives the
    lower one)."""
    ordered, n = values.sort().values, len(values)
    if n == 0:
        return values.new_tensor(float("nan"))
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2


@TASKS.register("normal", schema=NormalConfig)
class Normal(DenseTask):
    directions = {
        "loss": "min",
        "mean_angle": "min",
        "median_angle": "min",
        **dict.fromkeys(WITHIN, "max"),
    }
    primary_metric = "mean_angle"
    target_kind = "normal map"
    out_channels = 3
    joined = frozenset({"angles"})

    def fits(self, target: TargetInfo) -> bool:
        return target.dim == 3

    def cosines(self, prediction: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """n̂ · n per pixel (N×H×W; 0 where invalid) and the mask of valid pixels."""
        normal = batch.targets[self.target]
        cosine = (F.normalize(prediction, dim=1) * normal).sum(1)
        return cosine, normal.ne(0).any(1)

    def loss(self, prediction: Tensor, encoding: Encoding, batch: Batch) -> Tensor:
        cosine, valid = self.cosines(prediction, batch)
        return 1 - cosine.sum() / valid.sum().clamp(min=1)

    def split_state(
        self, prediction: Tensor, encoding: Encoding, batch: Batch
    ) -> dict[str, Tensor]:
        """Every pixel's angle error in degrees, NaN where invalid (dropped once, at the end of
        the split: selecting the valid ones here would read their number back every batch)."""
        cosine, valid = self.cosines(prediction, batch)
        angles = torch.rad2deg(torch.acos(cosine.clamp(-1, 1)))
        return {"angles": angles.masked_fill(~valid, float("nan")).flatten()}

    def split_metrics(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        angles = state["angles"]
        angles = angles[~angles.isnan()].double()
        return {
            "mean_angle": angles.mean(),
            "median_angle": median(angles),
            **{key: (angles < limit).double().mean() for key, limit in WITHIN.items()},
        }

    def pictures(self, prediction: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """RGB of (n + 1) / 2; invalid target pixels black."""
        normal = batch.targets[self.target]
        valid = normal.ne(0).any(1, keepdim=True)
        return (normal + 1) / 2 * valid, (F.normalize(prediction, dim=1) + 1) / 2
