"""Dense MNIST's scene: its targets follow from the two digits' layers as the module says."""

import torch
import torch.nn.functional as F

from mtlrun.data import IGNORE_LABEL
from mtlrun.data.dense_mnist import BACKGROUND, FAR, blurred, scene
from mtlrun.data.multimnist import compose, layers


def test_the_two_layers_compose_as_multimnist():
    images = torch.randint(256, (3, 28, 28), dtype=torch.uint8)
    partners = torch.randint(256, (3, 28, 28), dtype=torch.uint8)
    assert torch.equal(torch.maximum(*layers(images, partners)), compose(images, partners))
    assert layers(images, partners, 32)[0].shape == (3, 32, 32)


def test_the_higher_relief_is_seen_and_labels_follow_it():
    left = torch.zeros(1, 8, 8)
    right = torch.zeros(1, 8, 8)
    left[0, 2:6, 2:6] = 1.0  # a digit 1 square
    right[0, 4:8, 4:8] = 1.0  # a digit 7 square over it: the higher relief
    right[0, 0, 7] = 0.3  # a faint stroke, alone
    targets = scene(left, right, (torch.tensor([1]), torch.tensor([7])))
    labels, depth = targets["segmentation"][0], targets["depth"][0, 0]
    assert labels[2, 2] == 1 and labels[5, 5] == 7  # the overlap shows the 7
    assert labels[0, 0] == BACKGROUND and labels[0, 7] == IGNORE_LABEL
    heights = blurred(torch.stack([left, right]))[:, 0] * torch.tensor([2.4, 4.8])[:, None, None]
    assert torch.allclose(depth, FAR - heights.max(0).values)
    assert depth[5, 5] < depth[2, 2] < depth[0, 0]  # nearer where the relief is higher


def test_normals_are_the_unit_normals_of_the_depth_map():
    left = torch.rand(2, 8, 8)
    targets = scene(left, torch.zeros(2, 8, 8), (torch.tensor([3, 4]), torch.tensor([0, 0])))
    depth, normal = targets["depth"][:, 0], targets["normal"]
    assert torch.allclose(normal.norm(dim=1), torch.ones(2, 8, 8))
    # interior pixel: central differences
    dz_dx = (depth[:, 3, 5] - depth[:, 3, 3]) / 2
    dz_dy = (depth[:, 4, 4] - depth[:, 2, 4]) / 2
    expected = F.normalize(torch.stack([-dz_dx, -dz_dy, torch.ones(2)], 1), dim=1)
    assert torch.allclose(normal[:, :, 3, 4], expected, atol=1e-6)
