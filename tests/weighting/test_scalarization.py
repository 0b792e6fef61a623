"""The scalarization front's weighting (Xin et al. 2022): the grid on the simplex, the loss
of one point, and a `-m` run that gives one job per point (seeds sweeping beside it)."""

import itertools
import json
from pathlib import Path

import pytest
import torch
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from mtlrun.errors import ConfigError
from mtlrun.simplex import lattice_point, lattice_size
from tests.conftest import compose_config
from tests.helpers import run_mtlrun
from tests.weighting.problems import SharedVector, make


def test_two_tasks_at_resolution_8_have_9_points_k_eighths_apart():
    assert lattice_size(8, 2) == 9
    assert [lattice_point(8, 2, k) for k in range(9)] == [(k / 8, 1 - k / 8) for k in range(9)]


def test_the_lattice_for_three_tasks_is_every_composition_of_the_resolution():
    points = [lattice_point(4, 3, k) for k in range(lattice_size(4, 3))]
    compositions = sorted(
        (a / 4, b / 4, c / 4) for a, b, c in itertools.product(range(5), repeat=3) if a + b + c == 4
    )
    assert points == compositions  # lexicographic order, each point once
    assert len(points) == 15
    with pytest.raises(IndexError):
        lattice_point(4, 3, 15)


def test_the_loss_is_the_points_weighted_sum():
    model = SharedVector([0.0])
    weighting = make("scalarization", model, 3, resolution=4, point=6)
    weights = lattice_point(4, 3, 6)  # (0.25, 0.25, 0.5)
    losses = [torch.tensor(v, requires_grad=True) for v in (3.0, 5.0, 7.0)]
    total = weighting.backward(losses, model.output(model.representation()))
    assert total.item() == pytest.approx(
        sum(w * v for w, v in zip(weights, (3, 5, 7), strict=True))
    )
    assert [loss.grad.item() for loss in losses] == list(weights)
    assert weighting.logged() == {"t0/weight": 0.25, "t1/weight": 0.25, "t2/weight": 0.5}


def test_one_run_without_a_point_trains_the_point_nearest_equal_weights():
    assert make("scalarization", SharedVector([0.0]), 2).weights == [0.5, 0.5]
    # 8 eighths do not split in 3 equal parts: the first of the points nearest them.
    assert make("scalarization", SharedVector([0.0]), 3).weights == [0.25, 0.375, 0.375]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"point": 9}, "weighting.point=9 is past the grid: 2 tasks with a loss at "),
        ({"point": 0, "resolution": 0}, "weighting.resolution=0"),
    ],
)
def test_a_point_off_the_grid_is_refused_in_one_line(options, message):
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        make("scalarization", SharedVector([0.0]), 2, **options)


def sweep_jobs(overrides: list[str], sweep: list[str]) -> list[dict[str, str]]:
    """The jobs Hydra's basic sweeper makes of `overrides` (composed) plus the command line's
    `sweep`: the config's hydra.sweeper.params first, as BasicSweeper.sweep orders them."""
    cfg = compose_config(overrides, with_hydra=True)
    params = [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    parsed = OverridesParser.create().parse_overrides([*params, *sweep])
    (batch,) = BasicSweeper.split_arguments(parsed, None)
    return [dict(override.split("=", 1) for override in job) for job in batch]


MULTIMNIST = ["+experiment=multimnist", "+method=scalarization"]


def test_a_sweep_has_one_job_per_point_and_seed():
    jobs = sweep_jobs(MULTIMNIST, ["seed=0,1,2"])
    assert sorted((job["weighting.point"], job["seed"]) for job in jobs) == sorted(
        (str(k), str(s)) for k in range(9) for s in range(3)
    )


def test_the_grid_follows_the_resolution_and_the_number_of_tasks():
    jobs = sweep_jobs(
        [*MULTIMNIST, "weighting.resolution=4", "+task@tasks.parity=classification"], []
    )
    assert sorted(int(job["weighting.point"]) for job in jobs) == list(range(15))


def test_a_command_line_grid_replaces_the_methods():
    jobs = sweep_jobs(MULTIMNIST, ["weighting.point=0,8"])
    assert sorted(job["weighting.point"] for job in jobs) == ["0", "8"]


def test_a_real_sweep_runs_every_point(tmp_path: Path):
    sweep = tmp_path / "sweep"
    run_mtlrun(
        tmp_path,
        "train",
        "-m",
        "dataset=synthetic",
        "dataset.target_name=digit",
        "dataset.n_train=256",
        "dataset.val_size=64",
        "dataset.n_test=64",
        "backbone=mlp",
        "backbone.hidden_dims=[16]",
        "~task@tasks.reconstruction",
        "+task@tasks.digit=classification",
        "+task@tasks.parity=classification",
        "+method=scalarization",
        "weighting.resolution=2",
        "trainer.epochs=1",
        "device=cpu",
        f"hydra.sweep.dir={sweep}",
        check=True,
    )
    weights = []
    for job in range(3):
        record = json.loads((sweep / str(job) / "metrics.jsonl").read_text().splitlines()[0])
        weights.append((record["train/digit/weight"], record["train/parity/weight"]))
    assert sorted(weights) == [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]
