"""NYUv2 and Cityscapes in MTAN's / LibMTL's `.npy` layout: small fixtures in that exact layout
load as the arrays they hold, damaged or foreign files are named in one line, and the standard
augmentation equals LibMTL's `RandomScaleCrop` and flip, image by image."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from mtlrun.data import IGNORE_LABEL, Batch, load_data
from mtlrun.data.augment import apply_crops, draw_crops
from mtlrun.errors import DataError

CPU = torch.device("cpu")
SIZE = (12, 16)  # H × W; the real ones are 288×384 (NYUv2) and 128×256 (Cityscapes)


def write_scenes(
    root: Path,
    counts=(("train", 6), ("val", 3)),
    label_folder="label",
    num_classes=13,
    normals=True,
    label_dtype=np.float32,
) -> None:
    """A dataset in MTAN's layout: root/<split>/<kind>/<i>.npy, images H×W×3 in [0, 1],
    labels H×W (floats, -1 unlabelled), depth H×W×1 (0 where unmeasured), normals H×W×3."""
    rng = np.random.default_rng(0)
    kinds = {"image": (*SIZE, 3), label_folder: SIZE, "depth": (*SIZE, 1)}
    if normals:
        kinds["normal"] = (*SIZE, 3)
    for split, n in counts:
        for kind, shape in kinds.items():
            (root / split / kind).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                if kind == label_folder:
                    array = rng.integers(-1, num_classes, shape).astype(label_dtype)
                elif kind == "normal":
                    array = rng.normal(size=shape)
                    array /= np.linalg.norm(array, axis=-1, keepdims=True)
                else:
                    array = rng.random(shape)
                np.save(root / split / kind / f"{i}.npy", array.astype(np.float32))


def load(name, root, **fields):
    return load_data(OmegaConf.create({"name": name, "root": str(root), **fields}), CPU, seed=0)


def refusal(name, root, **fields) -> str:
    with pytest.raises(DataError) as error:
        load(name, root, **fields)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_nyuv2_loads_every_array_of_the_layout_as_it_is_on_disk(tmp_path):
    write_scenes(tmp_path)
    data = load("nyuv2", tmp_path)
    assert data.info.input_shape == (3, *SIZE)
    assert data.info.targets["segmentation"].num_classes == 13
    assert (data.info.targets["depth"].dim, data.info.targets["normal"].dim) == (1, 3)
    assert (len(data.train), len(data.val), len(data.test)) == (6, 0, 3)  # val/ is the test split
    assert data.augment is None  # off unless asked for
    test = data.test
    image = np.load(tmp_path / "val" / "image" / "2.npy")
    assert torch.equal(test.inputs[2], torch.from_numpy(np.moveaxis(image, -1, 0)))
    labels = np.load(tmp_path / "val" / "label" / "2.npy")
    assert test.targets["segmentation"].dtype == torch.int64
    assert torch.equal(test.targets["segmentation"][2], torch.from_numpy(labels).long())
    assert (test.targets["segmentation"] == IGNORE_LABEL).any()
    depth = np.load(tmp_path / "val" / "depth" / "1.npy")
    assert torch.equal(test.targets["depth"][1, 0], torch.from_numpy(depth[..., 0]))
    normal = np.load(tmp_path / "val" / "normal" / "0.npy")
    assert torch.equal(test.targets["normal"][0], torch.from_numpy(np.moveaxis(normal, -1, 0)))


def test_the_validation_split_is_carved_from_train_when_asked(tmp_path):
    write_scenes(tmp_path)
    data = load("nyuv2", tmp_path, val_size=2)
    assert (len(data.train), len(data.val), len(data.test)) == (4, 2, 3)


@pytest.mark.parametrize("label_folder", ["label_7", "label"])
def test_cityscapes_reads_mtans_label_7_or_libmtls_label(tmp_path, label_folder):
    write_scenes(tmp_path, label_folder=label_folder, num_classes=7, normals=False)
    data = load("cityscapes", tmp_path)
    assert set(data.info.targets) == {"segmentation", "depth"}
    assert data.info.targets["segmentation"].num_classes == 7
    labels = np.load(tmp_path / "val" / label_folder / "0.npy")
    assert torch.equal(data.test.targets["segmentation"][0], torch.from_numpy(labels).long())


def test_integer_label_files_load_too(tmp_path):
    write_scenes(tmp_path, label_dtype=np.int64)
    assert load("nyuv2", tmp_path).train.targets["segmentation"].dtype == torch.int64


def test_the_root_defaults_to_the_datasets_folder_under_mtlrun_data(tmp_path, monkeypatch):
    write_scenes(tmp_path / "nyuv2")
    monkeypatch.setenv("MTLRUN_DATA", str(tmp_path))
    data = load_data(OmegaConf.create({"name": "nyuv2"}), CPU, seed=0)
    assert len(data.train) == 6


def test_a_missing_root_or_split_folder_is_named(tmp_path):
    message = refusal("nyuv2", tmp_path / "nowhere")
    assert message.startswith(f"{tmp_path / 'nowhere'} is not a folder; download the preprocessed")
    write_scenes(tmp_path, counts=(("train", 2),))
    message = refusal("nyuv2", tmp_path)
    assert message.startswith(f"{tmp_path / 'val' / 'image'} is not a folder")


def test_a_missing_file_is_named_by_the_counts_of_its_folder(tmp_path):
    write_scenes(tmp_path)
    (tmp_path / "train" / "depth" / "4.npy").unlink()
    message = refusal("nyuv2", tmp_path)
    assert message == (
        f"{tmp_path / 'train' / 'depth'} holds 5 .npy files but {tmp_path / 'train' / 'image'} "
        "holds 6; every image needs one of each"
    )


def test_a_file_out_of_sequence_is_named_as_missing(tmp_path):
    write_scenes(tmp_path)
    folder = tmp_path / "train" / "normal"
    (folder / "3.npy").rename(folder / "7.npy")
    message = refusal("nyuv2", tmp_path)
    assert message.startswith(f"{folder / '3.npy'} is missing; each of image/, label/")


def pickled_objects(path: Path) -> None:
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def write_bytes(data: bytes):
    return lambda path: path.write_bytes(data)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (pickled_objects, "is not a readable .npy array (Object arrays cannot be loaded"),
        (write_bytes(pickle.dumps({"x": 1})), "is not a readable .npy array"),
        (write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr'"), "is not a readable .npy array"),
        (write_bytes(b""), "is not a readable .npy array"),
        (lambda path: np.save(path, np.zeros((12, 15, 1), np.float32)), "of shape (12, 15, 1)"),
        (lambda path: np.save(path, np.zeros((12, 16), np.float32)), "of shape (12, 16), not"),
        (lambda path: np.save(path, np.array(["a"] * 192).reshape(12, 16, 1)), "<U1 of shape"),
        (lambda path: np.savez(path.with_suffix(""), a=np.zeros(1)), "is not a single .npy array"),
    ],
    ids=[
        "pickled-objects",
        "a-pickle",
        "cut-off",
        "empty",
        "wrong-width",
        "no-channel-axis",
        "strings",
        "an-npz",
    ],
)
def test_a_damaged_or_foreign_depth_file_is_named(tmp_path, damage, words):
    write_scenes(tmp_path)
    path = tmp_path / "val" / "depth" / "1.npy"
    path.unlink()
    damage(path)
    if not path.exists():  # np.savez wrote <name>.npz: put it in the .npy's place
        path.with_suffix(".npz").rename(path)
    message = refusal("nyuv2", tmp_path)
    assert message.startswith(str(path))
    assert words in message


def test_a_label_file_with_foreign_values_is_named(tmp_path):
    write_scenes(tmp_path)
    path = tmp_path / "train" / "label" / "2.npy"
    np.save(path, np.full(SIZE, 13.0, np.float32))  # one class too many for NYUv2
    message = refusal("nyuv2", tmp_path)
    assert message.startswith(f"{path} holds values other than whole classes in [0, 13) and -1")
    np.save(path, np.full(SIZE, 0.5, np.float32))
    assert refusal("nyuv2", tmp_path).startswith(f"{path} holds values other than whole classes")


def test_non_finite_maps_are_refused(tmp_path):
    write_scenes(tmp_path)
    depth = np.ones((*SIZE, 1), np.float32)
    depth[0, 0, 0] = np.nan
    np.save(tmp_path / "train" / "depth" / "0.npy", depth)
    message = refusal("nyuv2", tmp_path)
    assert message == f"{tmp_path / 'train'}: the depth maps hold NaN or infinite values"


def libmtl_reference(image, label, depth, normal, scale, top, left, flipped):
    """LibMTL examples/nyu/create_dataset.py, `RandomScaleCrop.__call__` with its draws given
    (sc, i, j), then `NYUv2.__getitem__`'s flip, on one image (C×H×W; label H×W)."""
    height, width = image.shape[-2:]
    h, w = int(height / scale), int(width / scale)
    i, j = top, left
    img_ = F.interpolate(
        image[None, :, i : i + h, j : j + w], (height, width), mode="bilinear", align_corners=True
    ).squeeze(0)
    label_ = F.interpolate(
        label[None, None, i : i + h, j : j + w], size=(height, width), mode="nearest"
    ).squeeze(0, 1)
    depth_ = F.interpolate(
        depth[None, :, i : i + h, j : j + w], size=(height, width), mode="nearest"
    ).squeeze(0)
    normal_ = F.interpolate(
        normal[None, :, i : i + h, j : j + w], (height, width), mode="bilinear", align_corners=True
    ).squeeze(0)
    image, label, depth, normal = img_, label_, depth_ / scale, normal_
    if flipped:
        image = torch.flip(image, dims=[2])
        label = torch.flip(label, dims=[1])
        depth = torch.flip(depth, dims=[2])
        normal = torch.flip(normal, dims=[2])
        normal[0, :, :] = -normal[0, :, :]
    return image, label, depth, normal


@pytest.mark.parametrize("size", [(12, 16), (288, 384), (128, 256)], ids=str)
def test_the_augmentation_equals_libmtls_random_scale_crop_and_flip(size):
    torch.manual_seed(0)
    n = 24
    batch = Batch(
        torch.rand(n, 3, *size),
        {
            "segmentation": torch.randint(-1, 13, (n, *size)),
            "depth": torch.rand(n, 1, *size),
            "normal": F.normalize(torch.randn(n, 3, *size), dim=1),
        },
    )
    crops = draw_crops(n, size, (1.0, 1.2, 1.5), flip=True, device=CPU)
    assert set(crops.scale.tolist()) == {1.0, 1.2, 1.5} and crops.flipped.any()
    assert not crops.flipped.all()
    out = apply_crops(batch, crops)
    # grid_sample unnormalises its coordinates in float32, so bilinear values differ by up to
    # ~3e-5 on 384-pixel sides (under 1/100 of an 8-bit pixel step); nearest neighbour is exact.
    for k in range(n):
        expected = libmtl_reference(
            batch.inputs[k],
            batch.targets["segmentation"][k].float(),
            batch.targets["depth"][k],
            batch.targets["normal"][k],
            float(crops.scale[k]),
            int(crops.top[k]),
            int(crops.left[k]),
            bool(crops.flipped[k]),
        )
        assert int(crops.rows[k]) == int(size[0] / float(crops.scale[k]))
        torch.testing.assert_close(out.inputs[k], expected[0], atol=1e-4, rtol=0)
        assert torch.equal(out.targets["segmentation"][k], expected[1].long())
        torch.testing.assert_close(out.targets["depth"][k], expected[2], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(out.targets["normal"][k], expected[3], atol=1e-4, rtol=0)


def test_augmenting_is_on_the_device_and_draws_from_torchs_random_state(tmp_path):
    write_scenes(tmp_path)
    data = load("nyuv2", tmp_path, augment=True, augment_scales=[1.5], augment_flip=False)
    batch = data.train.head(6)
    torch.manual_seed(3)
    first = data.augment(batch)
    torch.manual_seed(3)
    assert torch.equal(data.augment(batch).inputs, first.inputs)  # a resumed run's crops
    assert not torch.equal(first.inputs, batch.inputs)  # every crop is 2/3 of the image
