"""MultiMNIST / MultiFashion follow Sener & Koltun's recipe, are seeded, and are cached."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from mtlrun.data import load_data
from mtlrun.data.multimnist import cache_root
from mtlrun.errors import DataError
from mtlrun.experiment import build
from mtlrun.lifecycle import train
from mtlrun.parts import DATASETS
from tests.conftest import DATA_ROOT, compose_config, needs_mnist

CPU = torch.device("cpu")
N_TRAIN, N_TEST = 60, 20


class FakeSource:
    """Stands in for torchvision's MNIST: random strokes, and labels that name their image
    (its index), so a composed image's right label tells which partner it got."""

    built = 0

    def __init__(self, root, train, download):
        FakeSource.built += 1
        n = N_TRAIN if train else N_TEST
        generator = torch.Generator().manual_seed(0 if train else 1)
        strokes = torch.rand((n, 28, 28), generator=generator) > 0.8
        self.data = (strokes * torch.randint(1, 256, (n, 28, 28), generator=generator)).byte()
        self.targets = list(range(n))


class FakeDigits(FakeSource):
    """The same images with labels 0-9, for training."""

    def __init__(self, root, train, download):
        super().__init__(root, train, download)
        self.targets = [i % 10 for i in self.targets]


@pytest.fixture
def fake_sources(monkeypatch, tmp_path):
    import torchvision.datasets

    FakeSource.built = 0
    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeSource)
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeSource)
    monkeypatch.setenv("MTLRUN_CACHE", str(tmp_path / "cache"))
    return FakeSource


def raw(name="multimnist", **fields):
    """The loader's splits before the validation split is carved (rows in source order)."""
    return DATASETS.build(name, {"name": name, "val_size": 10, **fields}, "dataset")


def hand_built(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Sener & Koltun's multi_mnist_loader.py, step by step, with PIL's nearest resize (what
    scipy's imresize used)."""
    canvas = np.zeros((36, 36), dtype=np.uint8)
    canvas[0:28, 0:28] = left
    canvas[6:34, 6:34] = right
    canvas[6:28, 6:28] = np.maximum(left[6:28, 6:28], right[0:22, 0:22])
    return np.asarray(Image.fromarray(canvas).resize((28, 28), Image.NEAREST))


def test_splits_have_the_right_shapes_and_labels(fake_sources, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeDigits)  # labels 0-9: load_data checks
    data = load_data(OmegaConf.create({"name": "multimnist", "val_size": 10}), CPU, seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == (N_TRAIN - 10, 10, N_TEST)
    assert data.train.inputs.shape[1:] == data.info.input_shape == (1, 28, 28)
    assert data.train.inputs.dtype == torch.float32
    assert 0 <= data.train.inputs.min() and data.train.inputs.max() <= 1
    assert set(data.info.targets) == {"left_digit", "right_digit"}
    assert all(t.num_classes == 10 for t in data.info.targets.values())


@pytest.mark.parametrize("split", ["train", "test"])
def test_left_label_is_the_source_image_and_right_label_its_partner(fake_sources, split):
    source = FakeSource(None, split == "train", False).data.numpy()
    part = getattr(raw(), split)
    left, right = part.targets["left_digit"], part.targets["right_digit"]
    assert torch.equal(left, torch.arange(len(source)))
    assert len(set(right.tolist())) > len(source) // 2  # partners are drawn, not fixed
    images = (part.inputs[:, 0] * 255).round().byte().numpy()
    for i in range(len(source)):
        np.testing.assert_array_equal(images[i], hand_built(source[i], source[right[i]]))


def test_build_is_deterministic_under_the_seed(fake_sources, tmp_path):
    a = raw(cache_dir=str(tmp_path / "a"))
    b = raw(cache_dir=str(tmp_path / "b"))
    other = raw(cache_dir=str(tmp_path / "c"), seed=1)
    assert torch.equal(a.train.inputs, b.train.inputs)
    assert torch.equal(a.test.targets["right_digit"], b.test.targets["right_digit"])
    assert not torch.equal(a.train.targets["right_digit"], other.train.targets["right_digit"])


def test_the_cache_is_written_once_then_reused(fake_sources, tmp_path):
    data_root = tmp_path / "read_only_data"
    first = raw(root=str(data_root))
    assert fake_sources.built == 2  # train and test sources read once
    cached = list((tmp_path / "cache").rglob("*.pt"))
    assert [p.name for p in cached] == ["FakeSource_seed0_v1.pt"]
    second = raw(root=str(data_root))
    assert fake_sources.built == 2  # the second load never touched the sources
    assert torch.equal(first.train.inputs, second.train.inputs)
    assert not data_root.exists()  # nothing written into the data root
    raw(seed=3)
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 2  # a new seed, a new entry


def changed(key: str, change):
    """A damage: the cache's arrays, with `change` applied to the one at `key`."""

    def damage(path):
        arrays = torch.load(path, weights_only=True)
        arrays[key] = change(arrays[key])
        torch.save(arrays, path)

    return damage


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(path.read_bytes()[:1000]),  # truncated
        lambda path: path.write_bytes(b"not a checkpoint"),  # garbled
        lambda path: torch.save({"train/images": torch.zeros(1)}, path),  # other arrays
        changed("train/images", lambda images: images[:, :20]),  # cropped images
        changed("test/images", lambda images: images.float()),  # another dtype
        changed("test/right_digit", lambda labels: labels[:-1]),  # a label short
        changed("test/images", lambda images: images[:0]),  # empty
    ],
    ids=[
        "truncated",
        "garbled",
        "other-arrays",
        "cropped",
        "float-images",
        "label-short",
        "empty",
    ],
)
def test_a_damaged_cache_is_rebuilt_with_a_warning(fake_sources, tmp_path, capsys, damage):
    first = raw()
    (cached,) = (tmp_path / "cache").rglob("*.pt")
    damage(cached)
    second = raw()
    assert fake_sources.built == 4  # the sources were read again
    assert torch.equal(first.train.inputs, second.train.inputs)
    assert f"the cache {cached}" in capsys.readouterr().err
    third = raw()  # and the rebuilt file is good again
    assert fake_sources.built == 4
    assert torch.equal(first.test.inputs, third.test.inputs)


def test_cache_folder_falls_back_to_the_environment_then_home(monkeypatch, tmp_path):
    assert cache_root(str(tmp_path / "x")) == tmp_path / "x"
    monkeypatch.setenv("MTLRUN_CACHE", str(tmp_path / "env"))
    assert cache_root(None) == tmp_path / "env"
    monkeypatch.delenv("MTLRUN_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root(None) == tmp_path / "home" / ".cache" / "mtlrun"


def test_an_unwritable_cache_is_a_one_line_error(fake_sources, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    with pytest.raises(DataError, match="dataset.cache_dir") as error:
        raw(cache_dir=str(blocker))
    assert "\n" not in str(error.value)


def test_multifashion_names_its_labels_classes(fake_sources):
    data = raw("multifashion")
    assert set(data.train.targets) == {"left_class", "right_class"}
    assert set(data.info.targets) == {"left_class", "right_class"}


def test_multimnist_experiment_has_the_lenet_trunk_and_trains(fake_sources, monkeypatch, run_dir):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeDigits)
    cfg = compose_config(
        [
            "+experiment=multimnist",
            "device=cpu",
            "dataset.val_size=10",
            "trainer.epochs=1",
            "trainer.progress=false",
        ]
    )
    experiment = build(cfg)
    model = experiment.model
    backbone = model.backbone
    convs = [m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 10, (5, 5)),
        (10, 20, (5, 5)),
    ]
    trunk = [m for m in backbone.blocks.modules() if isinstance(m, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in trunk] == [(320, 50)]
    for name in ("left_digit", "right_digit"):
        head = [m for m in model.head(name).modules() if isinstance(m, torch.nn.Linear)]
        assert [(lin.in_features, lin.out_features) for lin in head] == [(50, 50), (50, 10)]
    metrics = train(cfg, run_dir)["metrics"]
    assert {"test/left_digit/acc", "test/right_digit/acc"} <= set(metrics)


@pytest.mark.slow
@needs_mnist
def test_real_multimnist_has_the_official_sizes_and_left_labels(tmp_path):
    node = {
        "name": "multimnist",
        "root": DATA_ROOT,
        "download": False,
        "val_size": 5000,
        "cache_dir": str(tmp_path),
    }
    data = load_data(OmegaConf.create(node), CPU, seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == (55000, 5000, 10000)
    counts = torch.bincount(data.test.targets["left_digit"]).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # MNIST's test set
    right = torch.bincount(data.test.targets["right_digit"], minlength=10)
    assert right.min() > 800  # partners drawn from every digit
    # Two digits, each shrunk to (28/36)² of its area: more ink than one MNIST digit (33.3/255).
    assert 35 < float(data.test.inputs.mean()) * 255 < 45


def test_the_papers_recipe_options_dropout_and_mnist_standardisation(fake_sources, monkeypatch):
    """Sener & Koltun's MultiLeNet: Dropout2d on the second conv layer, dropout 0.5 in each head
    before its last layer, inputs standardised with MNIST's mean and std; the data and the image
    grids stay in [0, 1]."""
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeDigits)
    experiment = build(
        compose_config(
            [
                "+experiment=multimnist",
                "device=cpu",
                "dataset.val_size=10",
                "dataset.normalize=true",
                "backbone.conv_dropout=0.5",
                "tasks.left_digit.dropout=0.5",
                "tasks.right_digit.dropout=0.5",
            ]
        )
    )
    model = experiment.model
    backbone = model.backbone
    second_conv = list(backbone.blocks[1])
    assert isinstance(second_conv[0], torch.nn.Conv2d) and isinstance(
        second_conv[1], torch.nn.Dropout2d
    )
    assert not any(isinstance(m, torch.nn.Dropout2d) for m in backbone.blocks[0].modules())
    head = list(model.head("left_digit").net)
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert head[2].p == 0.5
    assert experiment.data.train.inputs.min() >= 0 and experiment.data.train.inputs.max() <= 1
    x = experiment.data.val.inputs
    first = backbone.blocks[0][0]
    expected = first((x - 0.1307) / 0.3081)
    seen = {}
    first.register_forward_hook(lambda module, inputs, output: seen.update(out=output))
    model.eval()
    model(x)
    assert torch.allclose(seen["out"], expected, atol=1e-5)
