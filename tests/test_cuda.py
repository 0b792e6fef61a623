"""On a CUDA GPU (skipped without one; `bench/gpu_check.sh` runs them there): the training step
reads nothing back to the host, for a loss weighting and for an aggregator, and whole runs train
on the GPU in fp32 and bf16."""

import pytest
import torch

from mtlrun.experiment import build
from mtlrun.lifecycle import train
from mtlrun.step import train_step
from tests.conftest import TINY, compose_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

GPU = [arg for arg in TINY if not arg.startswith("device=")] + ["device=cuda"]
REGRESSION = ["+experiment=synthetic_regression", "device=cuda", "trainer.batch_size=64"]


@pytest.mark.parametrize("weighting", ["equal", "upgrad", "mgda_ub", "famo", "gradnorm"])
def test_a_step_makes_no_host_sync(weighting):
    """torch's sync debug mode raises on every operation that waits for the GPU (`.item()`,
    a host copy, a data-dependent shape): the step runs with it set to error."""
    experiment = build(compose_config([*REGRESSION, f"weighting={weighting}"]))
    batches = experiment.data.train.batches(64, torch.Generator().manual_seed(0))
    train_step(experiment, next(batches))  # the first step allocates the optimiser's state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step, batch in zip(range(1, 4), batches, strict=False):
            train_step(experiment, batch, step=step)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_run_trains_on_the_gpu(precision, run_dir):
    cfg = compose_config(
        [*GPU, f"trainer.precision={precision}", "+task@tasks.class=classification"]
    )
    summary = train(cfg, run_dir)
    assert summary["metrics"]["test/class/acc"] > 0.5
