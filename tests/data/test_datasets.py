"""Loaders give float [0, 1] N×C×H×W tensors with named targets; missing data is one line."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from mtlrun.data import load_data
from mtlrun.data.split import Split
from mtlrun.errors import ConfigError, DataError
from tests.conftest import DATA_ROOT, needs_mnist

CPU = torch.device("cpu")


def load(**fields):
    return load_data(OmegaConf.create(fields), CPU, seed=0)


def test_synthetic_images_are_in_range_and_classes_are_learnable():
    data = load(name="synthetic", n_train=600, n_test=200, val_size=100, target_name="digit")
    assert data.train.inputs.shape == (500, 1, 28, 28)
    assert data.train.inputs.min() >= 0 and data.train.inputs.max() <= 1
    assert set(data.train.targets) == {"digit", "parity", "magnitude"}
    assert torch.equal(data.train.targets["parity"], data.train.targets["digit"] % 2)
    # Nearest class mean classifies the test set well: the labels carry signal.
    means = torch.stack(
        [data.train.inputs[data.train.targets["digit"] == k].mean(0) for k in range(10)]
    )
    distance = torch.cdist(data.test.inputs.flatten(1), means.flatten(1))
    assert (distance.argmin(1) == data.test.targets["digit"]).float().mean() > 0.9


def test_validation_split_is_seeded_and_disjoint():
    a = load(name="synthetic", n_train=300, val_size=50)
    b = load(name="synthetic", n_train=300, val_size=50)
    assert torch.equal(a.val.inputs, b.val.inputs)
    combined = torch.cat([a.train.inputs, a.val.inputs]).flatten(1)
    assert torch.unique(combined, dim=0).shape[0] == 300


def test_shuffled_batches_cover_every_example_once():
    split = Split(torch.arange(10.0).view(10, 1), {"y": torch.arange(10)})
    generator = torch.Generator().manual_seed(0)
    batches = list(split.batches(4, generator))
    assert [len(b) for b in batches] == [4, 4, 2]
    seen = torch.cat([b.targets["y"] for b in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    assert torch.equal(torch.cat([b.inputs for b in batches]).view(-1), seen.float())


def test_a_batch_gathers_its_one_value_targets_of_a_dtype_in_one_operation():
    from torch.profiler import profile

    targets = {
        "a": torch.arange(10),
        "y0": torch.rand(10),
        "b": torch.arange(10) % 3,
        "y1": torch.rand(10),
        "image": torch.rand(10, 2, 2),  # more than one value per row: gathered on its own
    }
    split = Split(torch.rand(10, 3), targets)
    index = torch.tensor([7, 2, 5])
    with profile() as prof:
        batch = split.batch(index)
    assert list(batch.targets) == list(targets)
    for name, values in targets.items():
        assert torch.equal(batch.targets[name], values[index]), name
    gathers = [event for event in prof.events() if event.name == "aten::index"]
    assert len(gathers) == 4  # the inputs, the integer targets, the real ones, the image


def test_missing_mnist_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(DataError) as error:
        load(name="mnist", root=str(tmp_path), download=False, val_size=10)
    message = str(error.value)
    assert str(tmp_path) in message and "dataset.download=false" in message
    assert "dataset.root" in message and "\n" not in message


def test_failed_download_names_the_folder(tmp_path, monkeypatch):
    from torchvision.datasets import FashionMNIST

    def offline(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(FashionMNIST, "download", offline)
    with pytest.raises(DataError, match="could not be downloaded .Error downloading"):
        load(name="fashion_mnist", root=str(tmp_path), download=True, val_size=10)


def test_root_falls_back_to_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLRUN_DATA", str(tmp_path / "from_env"))
    with pytest.raises(DataError, match="from_env"):
        load(name="mnist", download=False, val_size=10)


@needs_mnist
def test_real_mnist_loads_with_its_official_split():
    data = load(name="mnist", root=DATA_ROOT, download=False, val_size=5000)
    assert (len(data.train), len(data.val), len(data.test)) == (55000, 5000, 10000)
    assert data.test.inputs.shape[1:] == (1, 28, 28)
    counts = torch.bincount(data.test.targets["digit"]).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(float(torch.cat([data.train.inputs, data.val.inputs]).mean()) * 255 - 33.32) < 0.01


def test_cifar10_goes_through_torchvision_loader(monkeypatch):
    """CIFAR-10 is not available offline: feed torchvision's class synthetic arrays of its
    shape (N×32×32×3 uint8, list labels) and check the conversion path."""
    import torchvision.datasets

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            n = 100 if train else 20
            rng = np.random.default_rng(0 if train else 1)
            self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            self.targets = list(rng.integers(0, 10, n))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    data = load(name="cifar10", val_size=10)
    assert data.train.inputs.shape == (90, 3, 32, 32)
    assert data.info.targets["class"].num_classes == 10
    raw = FakeCIFAR10(None, True, False)
    assert torch.allclose(
        torch.cat([data.train.inputs, data.val.inputs]).sum(),
        torch.tensor(raw.data, dtype=torch.float32).sum() / 255,
    )


def test_arrays_accepts_both_layouts_and_rejects_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "train.npz", images=nhwc, labels=rng.integers(0, 3, 40))
    np.savez(
        tmp_path / "test.npz", images=nhwc[:10].transpose(0, 3, 1, 2), labels=np.arange(10) % 3
    )
    data = load(
        name="arrays",
        train_file=str(tmp_path / "train.npz"),
        test_file=str(tmp_path / "test.npz"),
        val_size=5,
    )
    assert data.train.inputs.shape[1:] == data.test.inputs.shape[1:] == (3, 8, 8)
    assert torch.allclose(data.test.inputs[0], torch.tensor(nhwc[0]).permute(2, 0, 1) / 255)
    np.savez(tmp_path / "bad.npz", images=nhwc.astype(np.float32), labels=np.zeros(40))
    with pytest.raises(DataError, match="must be uint8"):
        load(
            name="arrays",
            train_file=str(tmp_path / "bad.npz"),
            test_file=str(tmp_path / "test.npz"),
            val_size=5,
        )
    with pytest.raises(DataError, match="does not exist"):
        load(
            name="arrays",
            train_file=str(tmp_path / "nope.npz"),
            test_file=str(tmp_path / "test.npz"),
            val_size=5,
        )


def test_image_folder_reads_classes_from_subfolders(tmp_path):
    for label, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
        folder = tmp_path / f"class{label}"
        folder.mkdir()
        for i in range(6):
            Image.new("RGB", (20, 12), colour).save(folder / f"{i}.png")
    data = load(
        name="image_folder",
        train_dir=str(tmp_path),
        image_size=16,
        channels=3,
        test_size=4,
        val_size=2,
    )
    assert data.train.inputs.shape[1:] == (3, 16, 16)
    assert len(data.train) + len(data.val) + len(data.test) == 12
    red = data.train.inputs[data.train.targets["class"] == 0]
    assert torch.allclose(red[:, 0], torch.ones_like(red[:, 0]))
    with pytest.raises(DataError, match="is not a folder"):
        load(name="image_folder", train_dir=str(tmp_path / "missing"), val_size=1)


def test_validation_size_must_fit():
    with pytest.raises(ConfigError, match="dataset.val_size=600"):
        load(name="synthetic", n_train=500, val_size=600)
