"""The per-pixel tasks' losses and split metrics equal LibMTL's on the same random predictions.

The references are LibMTL's code written out (median-research-group/LibMTL,
`examples/nyu/utils.py`: `SegLoss`, `SegMetric`, `DepthLoss`, `DepthMetric`, `NormalLoss`,
`NormalMetric`), each batch fed to them as LibMTL's trainer does, their scores compared to
mtlrun's over the same batches (of unequal sizes, with unlabelled and invalid pixels).
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf

from mtlrun.backbones import Backbone, Encoding
from mtlrun.backbones.base import FeatureLatent
from mtlrun.data import IGNORE_LABEL, Batch, DatasetInfo, TargetInfo
from mtlrun.distributed import SINGLE
from mtlrun.errors import ConfigError
from mtlrun.evaluate import SplitState
from mtlrun.schemas.task import DepthConfig, NormalConfig, SegmentationConfig
from mtlrun.tasks import build_tasks
from mtlrun.tasks.depth import Depth
from mtlrun.tasks.normal import Normal
from mtlrun.tasks.segmentation import Segmentation

CLASSES, SIZE = 5, (6, 7)
BATCH_SIZES = (4, 3, 1)  # unequal, as a split's last batch


def dense_backbone(channels: int = 8) -> Backbone:
    return Backbone((1, *SIZE), [], FeatureLatent(), channels, nn.Identity, per_pixel=True)


INFO = DatasetInfo(
    "toy",
    (1, *SIZE),
    {
        "segmentation": TargetInfo(num_classes=CLASSES, per_pixel=True),
        "depth": TargetInfo(dim=1, per_pixel=True),
        "normal": TargetInfo(dim=3, per_pixel=True),
    },
)


def checked(task):
    task.check(INFO, dense_backbone(), [task])
    return task


def batches(seed: int = 0):
    """(prediction per task, batch) for each batch size: random predictions, random targets with
    about 10 % unlabelled or invalid pixels (segmentation −1, depth 0, normal the zero vector)."""
    generator = torch.Generator().manual_seed(seed)
    for n in BATCH_SIZES:
        labels = torch.randint(CLASSES, (n, *SIZE), generator=generator)
        unlabelled = torch.rand(n, *SIZE, generator=generator) < 0.1
        depth = torch.rand(n, 1, *SIZE, generator=generator) * 5 + 0.5
        invalid_depth = torch.rand(n, 1, *SIZE, generator=generator) < 0.1
        normal = F.normalize(torch.randn(n, 3, *SIZE, generator=generator), dim=1)
        invalid_normal = torch.rand(n, 1, *SIZE, generator=generator) < 0.1
        targets = {
            "segmentation": labels.masked_fill(unlabelled, IGNORE_LABEL),
            "depth": depth.masked_fill(invalid_depth, 0.0),
            "normal": normal.masked_fill(invalid_normal, 0.0),
        }
        predictions = {
            "segmentation": torch.randn(n, CLASSES, *SIZE, generator=generator),
            "depth": torch.rand(n, 1, *SIZE, generator=generator) * 5,
            "normal": torch.randn(n, 3, *SIZE, generator=generator),
        }
        yield predictions, Batch(torch.rand(n, 1, *SIZE, generator=generator), targets)


def split_metrics(task) -> dict[str, float]:
    """mtlrun's metrics of the task over `batches()`, accumulated as `evaluate` does."""
    state, sums, count = SplitState(task), {}, 0
    for predictions, batch in batches():
        prediction = predictions[task.name]
        encoding = Encoding(prediction, prediction)
        for key, value in task.metric_sums(prediction, encoding, batch).items():
            sums[key] = sums.get(key, 0.0) + float(value)
        count += len(batch)
        state.add(task.split_state(prediction, encoding, batch))
    metrics = {key: value / count for key, value in sums.items()}
    metrics.update({key: float(value) for key, value in state.metrics(SINGLE).items()})
    return metrics


# LibMTL, examples/nyu/utils.py, written out: each metric's update_fun on every batch, then its
# score_fun; each loss's compute_loss on one batch.


def libmtl_seg_metric(pairs) -> list[float]:
    record = torch.zeros((CLASSES, CLASSES), dtype=torch.int64)
    for pred, gt in pairs:  # SegMetric.update_fun
        pred = pred.softmax(1).argmax(1).flatten()
        gt = gt.long().flatten()
        k = (gt >= 0) & (gt < CLASSES)
        inds = CLASSES * gt[k].to(torch.int64) + pred[k]
        record += torch.bincount(inds, minlength=CLASSES**2).reshape(CLASSES, CLASSES)
    h = record.float()  # SegMetric.score_fun
    iu = torch.diag(h) / (h.sum(1) + h.sum(0) - torch.diag(h))
    acc = torch.diag(h).sum() / h.sum()
    return [torch.mean(iu).item(), acc.item()]


def libmtl_depth_metric(pairs) -> list[float]:
    abs_record, rel_record, bs = [], [], []
    for pred, gt in pairs:  # DepthMetric.update_fun
        binary_mask = (torch.sum(gt, dim=1) != 0).unsqueeze(1)
        pred = pred.masked_select(binary_mask)
        gt = gt.masked_select(binary_mask)
        abs_err = torch.abs(pred - gt)
        rel_err = torch.abs(pred - gt) / gt
        abs_err = (torch.sum(abs_err) / torch.nonzero(binary_mask, as_tuple=False).size(0)).item()
        rel_err = (torch.sum(rel_err) / torch.nonzero(binary_mask, as_tuple=False).size(0)).item()
        abs_record.append(abs_err)
        rel_record.append(rel_err)
        bs.append(pred.size()[0])
    records = np.stack([np.array(abs_record), np.array(rel_record)])  # DepthMetric.score_fun
    batch_size = np.array(bs)
    return [(records[i] * batch_size).sum() / (sum(batch_size)) for i in range(2)]


def libmtl_normal_metric(pairs) -> list[float]:
    record = []
    for pred, gt in pairs:  # NormalMetric.update_fun
        pred = pred / torch.norm(pred, p=2, dim=1, keepdim=True)
        binary_mask = torch.sum(gt, dim=1) != 0
        error = torch.acos(torch.clamp(torch.sum(pred * gt, 1).masked_select(binary_mask), -1, 1))
        record.append(np.degrees(error.numpy()))
    records = np.concatenate(record)  # NormalMetric.score_fun
    return [
        np.mean(records),
        np.median(records),
        np.mean((records < 11.25) * 1.0),
        np.mean((records < 22.5) * 1.0),
        np.mean((records < 30) * 1.0),
    ]


def libmtl_seg_loss(pred, gt):
    return nn.CrossEntropyLoss(ignore_index=-1)(pred, gt.long())


def libmtl_depth_loss(pred, gt):
    binary_mask = (torch.sum(gt, dim=1) != 0).float().unsqueeze(1)
    return torch.sum(torch.abs(pred - gt) * binary_mask) / torch.nonzero(
        binary_mask, as_tuple=False
    ).size(0)


def libmtl_normal_loss(pred, gt):
    pred = pred / torch.norm(pred, p=2, dim=1, keepdim=True)
    binary_mask = (torch.sum(gt, dim=1) != 0).float().unsqueeze(1)
    return 1 - torch.sum((pred * gt) * binary_mask) / torch.nonzero(
        binary_mask, as_tuple=False
    ).size(0)


def pairs(name: str):
    return [(predictions[name], batch.targets[name]) for predictions, batch in batches()]


def close(value: float, reference: float) -> bool:
    return value == pytest.approx(reference, rel=1e-6, abs=1e-9)


def test_segmentation_matches_libmtl():
    task = checked(Segmentation(SegmentationConfig(type="segmentation"), "segmentation"))
    metrics = split_metrics(task)
    miou, pixel_acc = libmtl_seg_metric(pairs("segmentation"))
    assert close(metrics["miou"], miou) and close(metrics["pixel_acc"], pixel_acc)
    assert 0.05 < miou < 0.2  # random guesses among 5 classes (1/9 expected), not 0 = 0
    for pred, gt in pairs("segmentation"):
        batch = Batch(torch.zeros(len(pred)), {"segmentation": gt})
        loss = task.loss(pred, Encoding(pred, pred), batch)
        assert close(float(loss), float(libmtl_seg_loss(pred, gt)))


def test_depth_matches_libmtl():
    task = checked(Depth(DepthConfig(type="depth"), "depth"))
    metrics = split_metrics(task)
    abs_err, rel_err = libmtl_depth_metric(pairs("depth"))
    assert close(metrics["abs_err"], abs_err) and close(metrics["rel_err"], rel_err)
    for pred, gt in pairs("depth"):
        batch = Batch(torch.zeros(len(pred)), {"depth": gt})
        loss = task.loss(pred, Encoding(pred, pred), batch)
        assert close(float(loss), float(libmtl_depth_loss(pred, gt)))


def test_normal_matches_libmtl():
    task = checked(Normal(NormalConfig(type="normal"), "normal"))
    metrics = split_metrics(task)
    keys = ["mean_angle", "median_angle", "within_11.25", "within_22.5", "within_30"]
    for key, reference in zip(keys, libmtl_normal_metric(pairs("normal")), strict=True):
        assert close(metrics[key], float(reference)), key
    for pred, gt in pairs("normal"):
        batch = Batch(torch.zeros(len(pred)), {"normal": gt})
        loss = task.loss(pred, Encoding(pred, pred), batch)
        assert close(float(loss), float(libmtl_normal_loss(pred, gt)))


def test_the_normal_median_of_an_even_count_is_the_mean_of_the_middle_two():
    task = Normal(NormalConfig(type="normal"), "normal")
    angles = torch.tensor([10.0, float("nan"), 40.0, 20.0, 30.0])
    metrics = task.split_metrics({"angles": angles})
    assert float(metrics["median_angle"]) == 25.0
    assert float(metrics["mean_angle"]) == 25.0
    assert float(metrics["within_22.5"]) == 0.5


def test_miou_averages_over_the_classes_present_where_libmtl_gives_nan():
    task = checked(Segmentation(SegmentationConfig(type="segmentation"), "segmentation"))
    labels = torch.tensor([[[0, 0, 1, IGNORE_LABEL]]])  # classes 2-4 in neither
    prediction = F.one_hot(torch.tensor([[[0, 1, 1, 3]]]), CLASSES).permute(0, 3, 1, 2).float()
    batch = Batch(torch.zeros(1), {"segmentation": labels})
    state = task.split_state(prediction, Encoding(prediction, prediction), batch)
    metrics = task.split_metrics(state)
    # IoU: class 0: 1 / 2, class 1: 1 / 2 (the ignored pixel's guess, 3, counts nowhere)
    assert float(metrics["miou"]) == 0.5
    assert float(metrics["pixel_acc"]) == pytest.approx(2 / 3)
    assert np.isnan(libmtl_seg_metric([(prediction, labels)])[0])


def test_a_batch_without_a_valid_pixel_has_loss_zero_not_nan():
    labels = torch.full((2, *SIZE), IGNORE_LABEL)
    task = checked(Segmentation(SegmentationConfig(type="segmentation"), "segmentation"))
    prediction = torch.randn(2, CLASSES, *SIZE)
    loss = task.loss(
        prediction, Encoding(prediction, prediction), Batch(labels, {"segmentation": labels})
    )
    assert float(loss) == 0.0


def test_a_dense_task_needs_a_per_pixel_target_and_backbone():
    task = Depth(DepthConfig(type="depth", target="normal"), "depth")
    with pytest.raises(
        ConfigError, match="has no per-pixel depth map 'normal'; its depth maps are: depth"
    ):
        task.check(INFO, dense_backbone(), [task])
    vector_backbone = Backbone((1, *SIZE), [], FeatureLatent(), 8, nn.Identity)
    node = OmegaConf.create({"depth": {"type": "depth"}})
    with pytest.raises(ConfigError, match="tasks.depth predicts per pixel.*use backbone=segnet"):
        build_tasks(node, INFO, vector_backbone)
    digit_info = DatasetInfo("toy", (1, *SIZE), {"digit": TargetInfo(num_classes=10)})
    with pytest.raises(ConfigError, match="tasks.digit reads a code per example"):
        build_tasks(
            OmegaConf.create({"digit": {"type": "classification"}}), digit_info, dense_backbone()
        )


def test_the_conv_head_predicts_every_pixel_and_resizes_a_smaller_map():
    task = checked(Segmentation(SegmentationConfig(type="segmentation"), "segmentation"))
    head = task.build_head(dense_backbone(8))
    full = torch.randn(2, 8, *SIZE)
    assert head(Encoding(full, full)).shape == (2, CLASSES, *SIZE)
    small = torch.randn(2, 8, 3, 4)  # a backbone at a lower resolution (a dilated ResNet's 1/8)
    assert head(Encoding(small, small)).shape == (2, CLASSES, *SIZE)
