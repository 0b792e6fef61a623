"""Real MNIST (from $MTLRUN_DATA): short runs that must reach stated numbers."""

import pytest

from mtlrun.lifecycle import train
from tests.conftest import compose_config, needs_mnist

pytestmark = [pytest.mark.slow, needs_mnist]


def test_vae_mnist_learns_digits_and_images_in_three_epochs(run_dir):
    cfg = compose_config(
        [
            "+experiment=vae_mnist",
            "trainer.epochs=3",
            "device=cpu",
            "trainer.progress=false",
            "tasks.reconstruction.iw_samples=8",
        ]
    )
    metrics = train(cfg, run_dir)["metrics"]
    assert metrics["test/digit/acc"] >= 0.935  # 97.5 % after the full 10 epochs
    assert metrics["test/reconstruction/nelbo"] <= 118.0  # 105.8 after 10
    assert metrics["test/reconstruction/nll_iw"] <= metrics["test/reconstruction/nelbo"]
