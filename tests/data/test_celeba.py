"""CelebA through torchvision's loader: a fixture in its exact layout (root/celeba/ with
img_align_celeba/ and the five list files) loads as the attributes and images it holds, the md5
check stays on by default, and missing or damaged files are named in one line."""

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from mtlrun.data import load_data
from mtlrun.errors import ConfigError, DataError
from mtlrun.parts import DATASETS
from mtlrun.schemas.dataset import CELEBA_ATTRIBUTES

CPU = torch.device("cpu")
PARTITION = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2]  # 6 train, 2 validation, 3 test images


def write_celeba(root: Path) -> np.ndarray:
    """CelebA's files for len(PARTITION) faces of 178×218 in torchvision's layout; returns the
    attributes, N×40 in {-1, 1} as list_attr_celeba.txt holds them."""
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"{i + 1:06d}.jpg" for i in range(len(PARTITION))]
    for name in names:
        pixels = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "img_align_celeba" / name, quality=95)
    attributes = rng.choice([-1, 1], (len(names), 40))

    def write(file: str, header: list[str], rows: list[list[object]]) -> None:
        lines = [str(len(rows)), *header] if header else []
        lines += [" ".join(map(str, row)) for row in rows]
        (folder / file).write_text("\n".join(lines) + "\n")

    write(
        "list_attr_celeba.txt",
        [" ".join(CELEBA_ATTRIBUTES)],
        [[name, *row] for name, row in zip(names, attributes, strict=True)],
    )
    write("list_eval_partition.txt", [], [[n, p] for n, p in zip(names, PARTITION, strict=True)])
    write("identity_CelebA.txt", [], [[name, 1 + i] for i, name in enumerate(names)])
    write(
        "list_bbox_celeba.txt", ["image_id x_1 y_1 width height"], [[n, 1, 2, 3, 4] for n in names]
    )
    landmarks = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y"
    write(
        "list_landmarks_align_celeba.txt",
        [landmarks + " rightmouth_x rightmouth_y"],
        [[n, *range(10)] for n in names],
    )
    return attributes


def load(root: Path, tmp_path: Path, **fields):
    node = {
        "name": "celeba",
        "root": str(root),
        "image_size": 16,
        "verify_checksums": False,
        "cache_dir": str(tmp_path / "cache"),
        **fields,
    }
    return load_data(OmegaConf.create(node), CPU, seed=0)


def refusal(root: Path, tmp_path: Path, **fields) -> str:
    with pytest.raises(DataError) as error:
        load(root, tmp_path, **fields)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_the_official_partition_and_the_40_attributes_load_as_binary_targets(tmp_path):
    attributes = write_celeba(tmp_path / "data")
    data = load(tmp_path / "data", tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (6, 2, 3)
    assert list(data.info.targets) == list(CELEBA_ATTRIBUTES)
    assert all(t.num_classes == 2 for t in data.info.targets.values())
    assert data.info.input_shape == (3, 16, 16)
    # the test split in file order: images 9, 10, 11
    for k, name in enumerate(CELEBA_ATTRIBUTES):
        expected = torch.from_numpy((attributes[8:, k] + 1) // 2)
        assert torch.equal(data.test.targets[name], expected)
    assert data.test.inputs.dtype == torch.uint8  # held compactly
    batch = data.test.head(3)
    assert batch.inputs.dtype == torch.float32
    face = Image.open(tmp_path / "data" / "celeba" / "img_align_celeba" / "000011.jpg")
    resized = np.asarray(face.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR))
    expected = torch.from_numpy(resized.transpose(2, 0, 1) / 255.0).float()
    torch.testing.assert_close(batch.inputs[2], expected)


def test_a_subset_of_attributes_is_the_targets(tmp_path):
    attributes = write_celeba(tmp_path / "data")
    data = load(tmp_path / "data", tmp_path, attributes=["Smiling", "Male"])
    assert list(data.info.targets) == ["Smiling", "Male"]
    column = CELEBA_ATTRIBUTES.index("Male")
    assert torch.equal(
        data.val.targets["Male"], torch.from_numpy((attributes[6:8, column] + 1) // 2)
    )


def test_an_unknown_attribute_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="dataset.attributes names 'Happy', not one of CelebA"):
        DATASETS.config("celeba", {"name": "celeba", "attributes": ["Smiling", "Happy"]}, "dataset")


def test_the_decoded_images_are_cached(tmp_path, monkeypatch):
    write_celeba(tmp_path / "data")
    first = load(tmp_path / "data", tmp_path)
    import mtlrun.data.celeba as celeba

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(celeba, "decode", no_decoding)
    again = load(tmp_path / "data", tmp_path)
    assert torch.equal(again.test.inputs, first.test.inputs)


def test_checksums_are_checked_by_default(tmp_path):
    write_celeba(tmp_path / "data")
    message = refusal(tmp_path / "data", tmp_path, verify_checksums=True)
    path = tmp_path / "data" / "celeba" / "list_attr_celeba.txt"
    assert message == (
        f"{path} is damaged, or is not CelebA's published file (its md5 differs); replace it, "
        "or set dataset.verify_checksums=false to read it as it is"
    )


def test_missing_files_and_folders_are_named(tmp_path):
    message = refusal(tmp_path / "nowhere", tmp_path)
    assert message.startswith(f"{tmp_path / 'nowhere' / 'celeba' / 'list_attr_celeba.txt'} is")
    assert "is missing; CelebA needs img_align_celeba/ and its list files" in message
    write_celeba(tmp_path / "data")
    folder = tmp_path / "data" / "celeba"
    (folder / "img_align_celeba").rename(folder / "elsewhere")
    message = refusal(tmp_path / "data", tmp_path)
    assert message == f"{folder / 'img_align_celeba'} is missing; unpack img_align_celeba.zip"


def test_a_damaged_image_is_named(tmp_path):
    write_celeba(tmp_path / "data")
    path = tmp_path / "data" / "celeba" / "img_align_celeba" / "000004.jpg"
    path.write_bytes(path.read_bytes()[:100])
    message = refusal(tmp_path / "data", tmp_path)
    assert message.startswith(f"{path} is not an image that can be read (")


def test_a_list_file_that_does_not_parse_is_named(tmp_path):
    write_celeba(tmp_path / "data")
    path = tmp_path / "data" / "celeba" / "list_eval_partition.txt"
    path.write_text("000001.jpg train\n")
    message = refusal(tmp_path / "data", tmp_path)
    assert message.startswith(f"the list files in {path.parent} do not parse as CelebA's (")
