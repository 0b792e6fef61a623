"""Bad data of every kind is refused in one line that names it, before the first step: damaged
or foreign dataset files, empty or class-less image folders, unreadable images, labels out of
range, empty arrays, images with neither 1 nor 3 channels."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from mtlrun.data import check_consistent, load_data
from mtlrun.data.registry import RawData
from mtlrun.data.split import DatasetInfo, Split, TargetInfo
from mtlrun.errors import DataError
from tests.conftest import DATA_ROOT, needs_mnist
from tests.helpers import run_cli

CPU = torch.device("cpu")


def load(**fields):
    return load_data(OmegaConf.create(fields), CPU, seed=0)


def refusal(**fields) -> str:
    with pytest.raises(DataError) as error:
        load(**fields)
    message = str(error.value)
    assert "\n" not in message
    return message


def mnist_with(tmp_path: Path, damage) -> Path:
    """A data root holding the real MNIST files, its train-images file damaged by `damage`."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in (Path(DATA_ROOT) / "MNIST" / "raw").iterdir():
        if not source.name.endswith(".gz"):
            (raw / source.name).symlink_to(source)
    damaged = raw / "train-images-idx3-ubyte"
    real = damaged.read_bytes()
    damaged.unlink()
    damaged.write_bytes(damage(real, raw))
    return damaged


@needs_mnist
@pytest.mark.parametrize(
    "damage",
    [
        lambda real, raw: real[:1_000_000],  # cut off
        lambda real, raw: (raw / "train-labels-idx1-ubyte").read_bytes(),  # the labels file
        lambda real, raw: os.urandom(5000),  # not an IDX file at all
        lambda real, raw: b"",  # empty
    ],
    ids=["truncated", "labels-in-its-place", "random-bytes", "empty"],
)
def test_a_damaged_mnist_file_is_named_as_damaged_not_missing(tmp_path, damage):
    damaged = mnist_with(tmp_path, damage)
    message = refusal(name="mnist", root=str(tmp_path))
    assert message.startswith(f"{damaged} is damaged, or is not MNIST's file (")
    assert message.endswith("replace it with torchvision's")
    assert "is not in" not in message


def test_a_cifar10_batch_with_another_checksum_is_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"a foreign file")
    message = refusal(name="cifar10", root=str(tmp_path))
    assert message.startswith(f"{folder / 'data_batch_1'} is damaged, or is not CIFAR10's file")


def image(path: Path, colour=(255, 0, 0)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def test_image_folders_without_images_or_with_unreadable_ones_are_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert refusal(name="image_folder", train_dir=str(empty), val_size=1).startswith(
        f"{empty} holds no images in class sub-folders (Couldn't find any class folder"
    )
    classless = tmp_path / "classless"
    (classless / "cats").mkdir(parents=True)
    (classless / "dogs").mkdir()
    (classless / "dogs" / "notes.txt").write_text("not an image")
    message = refusal(name="image_folder", train_dir=str(classless), val_size=1)
    assert message.startswith(f"{classless} holds no images in class sub-folders (Found no valid")

    mixed = tmp_path / "mixed"
    for i in range(4):
        image(mixed / "red" / f"{i}.png")
        image(mixed / "blue" / f"{i}.png", (0, 0, 255))
    (mixed / "blue" / "broken.png").write_bytes(b"\x89PNG cut off")
    message = refusal(name="image_folder", train_dir=str(mixed), test_size=2, val_size=1)
    assert message.startswith(f"{mixed / 'blue' / 'broken.png'} is not an image that can be read")
    assert message.endswith("remove it or replace it")


def test_files_that_are_not_images_are_left_out_of_an_image_folder(tmp_path):
    for i in range(4):
        image(tmp_path / "red" / f"{i}.png")
        image(tmp_path / "blue" / f"{i}.png", (0, 0, 255))
    (tmp_path / "red" / "README.txt").write_text("how these were made")
    data = load(name="image_folder", train_dir=str(tmp_path), test_size=2, val_size=1)
    assert len(data.train) + len(data.val) + len(data.test) == 8


def arrays_files(tmp_path: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    np.savez(tmp_path / "train.npz", images=images, labels=labels)
    good = np.zeros((4, 8, 8), np.uint8)
    np.savez(tmp_path / "test.npz", images=good, labels=np.arange(4) % 2)
    return {
        "name": "arrays",
        "train_file": str(tmp_path / "train.npz"),
        "test_file": str(tmp_path / "test.npz"),
        "val_size": 1,
    }


@pytest.mark.parametrize(
    ("images", "labels", "words"),
    [
        (np.zeros((6, 8, 8), np.uint8), np.array([0, 1, 0, -1, 1, 0]), "run from -1 to 1"),
        (
            np.zeros((0, 8, 8), np.uint8),
            np.zeros(0, np.int64),
            "train.npz holds no examples; its split would be empty",
        ),
        (np.zeros((6, 8, 8, 5), np.uint8), np.zeros(6, np.int64), "no channel axis of 1"),
        (np.zeros((6, 8, 8), np.uint8), np.zeros(5, np.int64), "'labels' must be N integers"),
        (np.zeros((6, 8, 8), np.uint8), np.zeros(6, np.float32), "'labels' must be N integers"),
    ],
    ids=["negative-label", "empty", "five-channels", "too-few-labels", "float-labels"],
)
def test_bad_arrays_are_refused(tmp_path, images, labels, words):
    assert words in refusal(**arrays_files(tmp_path, images, labels))


def raw_data(**changes) -> RawData:
    """A consistent image dataset (two classes), with `changes` to its parts."""
    parts = {
        "shape": (1, 4, 4),
        "train": Split(torch.rand(6, 1, 4, 4), {"class": torch.tensor([0, 1, 0, 1, 0, 1])}),
        "test": Split(torch.rand(2, 1, 4, 4), {"class": torch.tensor([0, 1])}),
        **changes,
    }
    info = DatasetInfo("mine", parts["shape"], {"class": TargetInfo(num_classes=2)})
    return RawData(info, parts["train"], parts["test"], val_size=1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"test": Split(torch.rand(2, 1, 4, 4), {"class": torch.tensor([0, 2])})},
            "dataset=mine: test labels 'class' run from 0 to 2; they must lie in [0, 2), "
            "one per class",
        ),
        (
            {"test": Split(torch.rand(2, 1, 4, 4), {"class": torch.tensor([0])})},
            "dataset=mine: the test split has 2 inputs but 1 values of target 'class'; "
            "they need one each",
        ),
        (
            {"test": Split(torch.rand(2, 1, 4, 4), {})},
            "dataset=mine: the test split has 2 inputs but none values of target 'class'; "
            "they need one each",
        ),
        (
            {"test": Split(torch.rand(2, 1, 4, 4), {"class": torch.tensor([0.0, 1.0])})},
            "dataset=mine: test labels 'class' must be one integer per example, not "
            "torch.float32 of shape (2,)",
        ),
        (
            {
                "shape": (2, 4, 4),
                "train": Split(torch.rand(6, 2, 4, 4), {"class": torch.zeros(6, dtype=torch.long)}),
            },
            "dataset=mine: images have 2 channels; use 1 (grayscale) or 3 (RGB)",
        ),
        (
            {"test": Split(torch.rand(2, 1, 5, 4), {"class": torch.tensor([0, 1])})},
            "dataset=mine: test inputs are (1, 5, 4), not (1, 4, 4) like the dataset's; every "
            "example needs one shape",
        ),
        (
            {"train": Split(torch.full((6, 1, 4, 4), float("nan")), {"class": torch.zeros(6)})},
            "dataset=mine: the train inputs hold NaN or infinite values",
        ),
        (
            {"test": Split(torch.rand(0, 1, 4, 4), {"class": torch.zeros(0, dtype=torch.long)})},
            "dataset=mine: the test split is empty; it needs examples",
        ),
    ],
    ids=[
        "label-too-high",
        "labels-short",
        "no-labels",
        "float-labels",
        "two-channels",
        "other-shape",
        "nan",
        "empty",
    ],
)
def test_an_inconsistent_dataset_is_refused_in_one_line(changes, message):
    with pytest.raises(DataError) as error:
        check_consistent(raw_data(**changes))
    assert str(error.value) == message


def test_a_consistent_dataset_passes():
    check_consistent(raw_data())


def test_bad_data_stops_the_cli_before_the_first_step(tmp_path):
    images = np.zeros((6, 8, 8), np.uint8)
    config = arrays_files(tmp_path, images, np.array([0, 1, 0, 7, 1, -3]))
    result = run_cli(
        tmp_path,
        "train",
        "dataset=arrays",
        f"dataset.train_file={config['train_file']}",
        f"dataset.test_file={config['test_file']}",
        "dataset.val_size=1",
        "backbone=dense_ae",
        "device=cpu",
        "hydra.run.dir=run",
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mtlrun: error: dataset=arrays: train labels 'class' run from -3 to 7; they must lie in "
        "[0, 8), one per class"
    )
    assert not list((tmp_path / "run").glob("*.pt"))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_file_that_is_not_an_npz_archive_is_named_for_what_it_is(tmp_path):
    """numpy's own message for such a file speaks of pickled data and allow_pickle=True, which
    would have the user load a pickle (it can run code)."""
    import pickle

    good = arrays_files(tmp_path, np.zeros((4, 8, 8), np.uint8), np.arange(4) % 2)
    saves = "numpy.savez(path, images=..., labels=...) writes one"
    wrong = tmp_path / "wrong.npz"
    cases = {
        "a pickle": (
            lambda: wrong.write_bytes(pickle.dumps({"images": 1})),
            f"{wrong} is not a .npz archive (a zip of arrays); {saves}",
        ),
        "text": (
            lambda: wrong.write_text("images,labels\n"),
            f"{wrong} is not a .npz archive (a zip of arrays); {saves}",
        ),
        "a .npy array": (
            lambda: np.save(wrong.open("wb"), np.zeros((4, 8, 8), np.uint8)),
            f"{wrong} is a .npy file, a single array; mtlrun reads a .npz archive of 'images' "
            f"and 'labels': {saves}",
        ),
        "object arrays": (
            lambda: np.savez(wrong, images=np.array([None]), labels=np.arange(1)),
            f"{wrong} holds Python objects (an object array), which mtlrun does not load since "
            "unpickling can run code; save uint8 'images' and integer 'labels'",
        ),
        "a cut-off archive": (
            lambda: wrong.write_bytes(Path(good["test_file"]).read_bytes()[:300]),
            f"{wrong} is a damaged .npz archive (File is not a zip file)",
        ),
    }
    for name, (write, message) in cases.items():
        write()
        line = refusal(**{**good, "test_file": str(wrong)})
        assert line == message, name
        assert "pickle" not in line.replace("unpickling", ""), name


def test_an_empty_split_names_the_setting_that_made_it_empty(tmp_path):
    folder = tmp_path / "images"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for n in range(2):
            Image.new("L", (8, 8)).save(folder / label / f"{n}.png")
    for test_size, empty in ((4, "training"), (0, "test")):
        line = refusal(name="image_folder", train_dir=str(folder), test_size=test_size)
        assert line == (
            f"dataset.test_size={test_size} would leave the {empty} split empty: "
            "dataset.train_dir holds 4 images; hold out between 1 and 3, or give dataset.test_dir"
        )
    for dataset in ("synthetic", "synthetic_regression"):
        for key in ("n_train", "n_test"):
            result = run_cli(tmp_path, "train", f"dataset={dataset}", f"dataset.{key}=0")
            assert result.returncode == 2, result.stderr
            assert result.stderr == f"mtlrun: error: dataset.{key}=0 must be at least 1\n"
    assert not (tmp_path / "outputs").exists()
