"""Each backbone encodes, decodes to the input's shape, and learns on synthetic data."""

import pytest
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from mtlrun.data import DatasetInfo, TargetInfo
from mtlrun.errors import ConfigError
from mtlrun.experiment import build
from mtlrun.lifecycle import train
from mtlrun.parts import BACKBONES
from tests.conftest import TINY, compose_config

MNIST_LIKE = DatasetInfo("synthetic", (1, 28, 28), {"class": TargetInfo(10)})
CIFAR_LIKE = DatasetInfo("synthetic", (3, 32, 32), {"class": TargetInfo(10)})
VECTORS = DatasetInfo("synthetic_regression", (16,), {"y0": TargetInfo(dim=1)})
# The MultiMNIST trunk of Sener & Koltun 2018: conv 1→10 k5, pool, conv 10→20 k5, pool, fc 320→50.
LENET = {"channels": [10, 20], "kernel_size": 5, "padding": "valid", "hidden_dims": [50]}


def backbone(name, info, **overrides):
    node = ConfigStore.instance().load(f"backbone/{name}.yaml").node  # the option `backbone=name`
    return BACKBONES.build(name, OmegaConf.merge(node, overrides), "backbone", info)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("dense_ae", {}),
        ("vae", {}),
        ("mlp", {}),
        ("cnn", {}),
        ("conv_vae", {}),
        ("cnn", LENET),
        ("conv_vae", {"padding": "valid", "kernel_size": 5}),
    ],
    ids=["dense_ae", "vae", "mlp", "cnn", "conv_vae", "cnn-valid", "conv_vae-valid"],
)
@pytest.mark.parametrize("info", [MNIST_LIKE, CIFAR_LIKE], ids=["28x28x1", "32x32x3"])
def test_decoder_output_matches_the_input_shape(name, overrides, info):
    net = backbone(name, info, **overrides)
    x = torch.rand(5, *info.input_shape)
    encoding = net.encode(x)
    assert encoding.features.shape == (5, net.code_dim)
    assert net.make_decoder()(encoding.z).shape == x.shape
    assert (encoding.kl is not None) == net.has_prior


def test_vae_samples_its_code_and_reports_the_analytic_kl():
    net = backbone("vae", MNIST_LIKE)
    encoding = net.encode(torch.rand(4, 1, 28, 28))
    assert not torch.equal(encoding.z, encoding.features)  # a posterior sample, not the mean
    mu, logvar = encoding.mu, encoding.logvar
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(encoding.kl, expected, atol=1e-5)


def test_beta_is_the_backbones_kl_weight():
    assert backbone("vae", MNIST_LIKE, beta=4.0).kl_weight == 4.0
    assert backbone("dense_ae", MNIST_LIKE).kl_weight is None


def test_cnn_has_the_keras_shape():
    net = backbone("cnn", CIFAR_LIKE)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.blocks.modules() if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [32, 64]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(64 * 8 * 8, 128)]


def test_cnn_with_valid_padding_is_the_lenet_trunk():
    net = backbone("cnn", MNIST_LIKE, **LENET)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.blocks.modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 10, (5, 5)),
        (10, 20, (5, 5)),
    ]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(320, 50)]
    assert net.code_dim == 50


def test_valid_padding_that_leaves_nothing_is_a_config_error():
    with pytest.raises(ConfigError, match="shrinks 28×28 images to nothing"):
        backbone("cnn", MNIST_LIKE, channels=[8, 8, 8], kernel_size=5, padding="valid")
    with pytest.raises(ConfigError, match="backbone.padding='full' is not known"):
        backbone("cnn", MNIST_LIKE, padding="full")


def test_conv_backbones_reject_vector_data():
    with pytest.raises(ConfigError, match="backbone=cnn needs image data"):
        backbone("cnn", VECTORS)


@pytest.mark.parametrize("name", ["dense_ae", "vae", "mlp"])
def test_dense_backbones_take_vectors(name):
    net = backbone(name, VECTORS)
    x = torch.randn(5, 16)
    encoding = net.encode(x)
    assert encoding.features.shape == (5, net.code_dim)
    assert net.make_decoder()(encoding.z).shape == x.shape


def test_mlp_code_is_its_last_hidden_layer():
    net = backbone("mlp", MNIST_LIKE, hidden_dims=[64, 32])
    encoding = net.encode(torch.rand(3, 1, 28, 28))
    assert net.code_dim == 32 and torch.equal(encoding.features, encoding.z)
    assert (encoding.features >= 0).all()  # after the activation
    assert not net.has_prior
    with pytest.raises(ConfigError, match="backbone.hidden_dims is empty"):
        backbone("mlp", MNIST_LIKE, hidden_dims=[])


@pytest.mark.slow  # a long training, to show that it learns
def test_mlp_mnist_tasks_learns_digit_parity_and_magnitude(run_dir):
    """The experiment's three heads on a shared MLP, on synthetic digit-labelled images."""
    cfg = compose_config(["+experiment=mlp_mnist_tasks", *TINY, "dataset.target_name=digit"])
    metrics = train(cfg, run_dir)["metrics"]
    for name in ("digit", "parity", "magnitude"):
        assert metrics[f"test/{name}/acc"] > 0.8, name


@pytest.mark.slow  # a long training, to show that it learns
@pytest.mark.parametrize("name", ["dense_ae", "vae", "mlp", "cnn", "conv_vae"])
def test_each_backbone_learns_reconstruction_and_class(name):
    """A few hundred steps on synthetic data: both task losses fall clearly."""
    cfg = compose_config(
        [
            *TINY,
            f"backbone={name}",
            "+task@tasks.class=classification",
            "dataset.noise=0.02",
            "optim.lr=2e-3",
        ]
    )
    experiment = build(cfg)
    model, optimizer = experiment.model, experiment.optimizer
    tasks = experiment.tasks
    batches = list(experiment.data.train.batches(64))

    val = experiment.data.val.head(10**6)
    # BCE against grey-level targets cannot reach 0: measure the excess over their entropy.
    x = val.inputs.clamp(1e-6, 1 - 1e-6)
    entropy = -(x * x.log() + (1 - x) * (1 - x).log()).flatten(1).sum(1).mean().item()

    def losses():
        with torch.no_grad():
            recon, cls = experiment.task_losses(model(val.inputs), val)
            return recon.item() - entropy, cls.item()

    before = losses()
    for _ in range(20):  # the VAEs escape early posterior collapse after ~12 epochs here
        for batch in batches:
            step_losses = experiment.task_losses(model(batch.inputs), batch)
            total = sum(t.weight * loss for t, loss in zip(tasks, step_losses, strict=True))
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
    after = losses()
    assert after[0] < 0.7 * before[0], f"reconstruction excess {before[0]} -> {after[0]}"
    assert after[1] < 0.5 * before[1], f"class {before[1]} -> {after[1]}"
