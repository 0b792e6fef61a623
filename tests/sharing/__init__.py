"""Tests of the sharing strategies: small dense networks on generated images."""

import json
from collections.abc import Iterable
from pathlib import Path

import pytest
from torch import nn

from mtlrun.errors import ConfigError
from mtlrun.experiment import build
from tests.conftest import TINY, compose_config

# Two trunk blocks (64, 32 wide) and an 8-wide code: small enough for runs of a second or two.
SMALL = [
    *TINY,
    "backbone=dense_ae",
    "backbone.hidden_dims=[64,32]",
    "backbone.latent_dim=8",
    "optim.lr=3e-3",
    "trainer.epochs=3",
]


def config_error(overrides: list[str]) -> str:
    """The message of the ConfigError that building fails with; it must be one line."""
    with pytest.raises(ConfigError) as error:
        build(compose_config(overrides))
    message = str(error.value)
    assert "\n" not in message
    return message


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_learns(run_dir: Path, task: str = "class") -> None:
    """The validation loss fell and the classifier beats chance (10 classes) by far."""
    val = [record for record in read_metrics(run_dir) if record["split"] == "val"]
    assert val[-1]["val/loss"] < val[0]["val/loss"]
    assert val[-1][f"val/{task}/acc"] > 0.3


def same_parameters(got: Iterable[nn.Parameter], expected: Iterable[nn.Parameter]) -> bool:
    """Whether `got` is exactly the parameter objects `expected`, in order."""
    return [id(p) for p in got] == [id(p) for p in expected]
