"""Task affinity as TAG defines it (Fifty et al. 2021), the grouping it suggests, and
sharing=grouped, which trains that grouping."""

import json
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mtlrun.affinity import TaskAffinity
from mtlrun.distributed import Ranks
from mtlrun.experiment import build
from mtlrun.lifecycle import train
from mtlrun.report.grouping import best_groups, group_scores, serving_groups, training_affinity
from tests.conftest import TINY, compose_config
from tests.helpers import run_cli
from tests.sharing import config_error

CENTRES = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 3.0]])


class Point(nn.Module):
    """θ, every task's shared parameter; task t's loss is ½‖θ − c_t‖²."""

    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([0.5, 1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.theta * 1.0


def losses_of(theta: torch.Tensor) -> list[torch.Tensor]:
    return [0.5 * (theta - c).pow(2).sum() for c in CENTRES]


def test_affinity_is_the_lookahead_change_of_each_task_loss_after_a_step_on_another():
    model = Point()
    experiment = SimpleNamespace(
        model=model,
        loss_tasks=list(CENTRES),
        device=torch.device("cpu"),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        ranks=Ranks(),
        autocast=nullcontext(),
        task_losses=lambda output, batch, scales: losses_of(output),
    )
    affinity = TaskAffinity(experiment, every=1)
    draws = affinity.draws(0)
    affinity.measure(0, losses_of(model(torch.zeros(1))), torch.zeros(1), None, draws)
    matrix = torch.tensor(affinity.epoch_matrix())
    theta = model.theta.detach()
    for i, centre in enumerate(CENTRES):
        stepped = theta - 0.1 * (theta - centre)  # θ − η ∇_θ L_i
        for j in range(len(CENTRES)):
            expected = 1 - losses_of(stepped)[j] / losses_of(theta)[j]  # their eq. 3
            torch.testing.assert_close(matrix[i, j], expected)
    assert matrix[0, 1] > 0 > matrix[0, 2]  # c₀ lies toward c₁, away from c₂


def symmetric(tasks: list[str], pairs: dict[str, float]) -> list[list[float | None]]:
    return [[None if i == j else pairs["".join(sorted(i + j))] for j in tasks] for i in tasks]


def test_the_best_grouping_keeps_the_tasks_that_help_each_other_together():
    tasks = ["a", "b", "c", "d"]
    pairs = {"ab": 0.3, "cd": 0.3, "ac": -0.2, "ad": -0.2, "bc": -0.2, "bd": -0.2}
    groups, score = best_groups(tasks, symmetric(tasks, pairs), 2)
    assert groups == [["a", "b"], ["c", "d"]]
    assert score == pytest.approx(0.3)  # every task served by its pair


def test_tags_network_selection_lets_groups_overlap_and_serves_each_task_by_its_best_group():
    # The case: TAG picks {a,b},{b,c}: a ← ab 0.5, b ← ab 0.5, c ← bc 0.4 (mean 0.467);
    # the old disjoint split {a,b},{c} left c alone.
    tasks = ["a", "b", "c"]
    matrix = symmetric(tasks, {"ab": 0.5, "bc": 0.4, "ac": -0.2})
    groups, score = best_groups(tasks, matrix, 2)
    assert groups == [["a", "b"], ["b", "c"]]
    assert score == pytest.approx((0.5 + 0.5 + 0.4) / 3)
    assert serving_groups(tasks, matrix, groups) == {
        "a": ["a", "b"],
        "b": ["a", "b"],
        "c": ["b", "c"],
    }
    # Without overlap, a lone task scores −∞ (TAG's −10⁶): all three together.
    groups, score = best_groups(tasks, matrix, 2, disjoint=True)
    assert groups == [["a", "b", "c"]]
    assert score == pytest.approx(((0.5 - 0.2) / 2 + (0.5 + 0.4) / 2 + (0.4 - 0.2) / 2) / 3)


def test_a_task_is_scored_by_the_affinity_onto_it():
    # Z_{a→b} = 0.6 (a's step helps b), Z_{b→a} = −0.1, Z_{a→c} = Z_{c→a} = 0.2, b,c 0.
    tasks = ["a", "b", "c"]
    matrix = [[None, 0.6, 0.2], [-0.1, None, 0.0], [0.2, 0.0, None]]
    scores = group_scores(tasks, matrix, frozenset(tasks))
    assert scores == pytest.approx({"a": (-0.1 + 0.2) / 2, "b": 0.6 / 2, "c": 0.2 / 2})


def test_the_report_averages_the_matrix_over_training():
    records = [
        {"train/affinity/a/b": 0.2, "train/affinity/b/a": -0.4},
        {"train/affinity/a/b": 0.4, "train/affinity/b/a": 0.0},
    ]
    assert training_affinity(records, ["a", "b"]) == [
        [None, pytest.approx(0.3)],
        [pytest.approx(-0.2), None],
    ]


THREE_TASKS = [
    *TINY,
    "dataset.target_name=digit",
    "backbone=mlp",
    "backbone.hidden_dims=[32]",
    "~task@tasks.reconstruction",
    "+task@tasks.digit=classification",
    "+task@tasks.parity=classification",
    "+task@tasks.magnitude=classification",
]


def test_a_run_logs_the_affinity_matrix_per_epoch_and_the_report_suggests_groups(tmp_path):
    run_dir = tmp_path / "run"
    train(compose_config([*THREE_TASKS, "trainer.task_affinity=true"]), run_dir)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    for record in (r for r in records if r["split"] == "train"):
        keys = [key for key in record if key.startswith("train/affinity/")]
        assert len(keys) == 6  # T(T − 1)
        assert (run_dir / "images" / f"affinity_e{record['epoch']:03d}.png").is_file()

    run_cli(tmp_path, "report", str(run_dir), "groups=2", check=True)
    (row,) = json.loads((run_dir / "report.json").read_text())["rows"]
    affinity = row["affinity"]
    assert affinity["tasks"] == ["digit", "parity", "magnitude"]
    # The matrix of the report is the mean of the epochs' (TAG averages over training).
    epochs = [r for r in records if r["split"] == "train"]
    expected = training_affinity(epochs, affinity["tasks"])
    assert affinity["matrix"] == expected
    assert affinity["matrix"] != training_affinity(epochs[-1:], affinity["tasks"])
    assert 1 <= len(affinity["groups"]) <= 2
    assert set(affinity["served_by"]) == set(affinity["tasks"])
    assert sorted(sum(affinity["disjoint_groups"], [])) == sorted(affinity["tasks"])
    groups = "[" + ",".join("[" + ",".join(g) + "]" for g in affinity["disjoint_groups"]) + "]"
    assert f"sharing=grouped 'sharing.groups={groups}'" in (run_dir / "report.md").read_text()

    # The suggestion trains as it is written.
    grouped = build(compose_config([*THREE_TASKS, "sharing=grouped", f"sharing.groups={groups}"]))
    assert len(grouped.model.networks) == len(affinity["disjoint_groups"])


def test_grouped_gives_each_group_its_own_network():
    cfg = compose_config(
        [*THREE_TASKS, "sharing=grouped", "sharing.groups=[[digit,parity],[magnitude]]"]
    )
    model = build(cfg).model
    output = model(torch.rand(4, 1, 28, 28))
    assert output.encodings["digit"] is output.encodings["parity"]
    assert not torch.equal(
        output.encodings["digit"].features, output.encodings["magnitude"].features
    )
    assert model(torch.rand(4, 1, 28, 28)).shared == []  # no parameter serves every task


@pytest.mark.parametrize(
    ("groups", "problem"),
    [
        ("[[digit,parity]]", "leaves out magnitude"),
        ("[[digit,parity],[magnitude,size]]", "names tasks this run does not train: size"),
        ("[[digit,parity],[parity,magnitude]]", "lists parity twice"),
    ],
)
def test_grouped_refuses_groups_that_do_not_cover_the_tasks_once_in_one_line(groups, problem):
    message = config_error([*THREE_TASKS, "sharing=grouped", f"sharing.groups={groups}"])
    assert message == (
        f"sharing.groups={groups} {problem}; put every task (digit, parity, magnitude) in one "
        "group, e.g. sharing.groups=[[digit,parity,magnitude]]"
    )


def test_report_groups_needs_a_run_that_measured_affinity(tmp_path):
    run_dir = tmp_path / "run"
    train(compose_config([*TINY, "backbone.hidden_dims=[32]", "trainer.epochs=1"]), run_dir)
    result = run_cli(tmp_path, "report", str(run_dir), "groups=2")
    assert result.returncode == 2
    assert "groups=2 splits tasks by their affinity, but no run under" in result.stderr


DROPOUT = [*THREE_TASKS, "backbone.dropout=0.5"]
# A VAE whose reconstruction task reads the sample z (the classifier reads μ).
VAE_SAMPLE = [
    *TINY,
    "backbone=vae",
    "backbone.hidden_dims=[32]",
    "+task@tasks.class=classification",
    "tasks.reconstruction.iw_samples=0",
]


@pytest.mark.parametrize(
    ("overrides", "tasks"), [(DROPOUT, 3), (VAE_SAMPLE, 2)], ids=["dropout", "vae_sample"]
)
def test_the_lookahead_sees_the_steps_own_random_draws(tmp_path, overrides, tasks):
    # At a learning rate of ~0 the lookahead is no step: with the step's own dropout masks (or
    # VAE sample), every L_j after equals L_j before and Z = 0; fresh draws would give noise.
    train(compose_config([*overrides, "trainer.task_affinity=true", "optim.lr=1e-30"]), tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    values = [v for r in records for k, v in r.items() if k.startswith("train/affinity/")]
    assert len(values) == 2 * tasks * (tasks - 1)  # 2 epochs
    assert max(abs(v) for v in values) < 1e-6


def test_measuring_affinity_leaves_the_training_draws_as_they_were(tmp_path):
    summaries = [
        train(compose_config([*DROPOUT, f"trainer.task_affinity={on}"]), tmp_path / on)
        for on in ("false", "true")
    ]
    assert summaries[0]["metrics"] == summaries[1]["metrics"]


@pytest.mark.parametrize(
    "overrides, problem",
    [
        (
            [*TINY, "trainer.task_affinity=true"],
            "measures how a step on one task's loss changes another task's, but this run trains "
            "one task (reconstruction); add a task, e.g. +task@tasks.digit=classification, or "
            "set trainer.task_affinity=false",
        ),
        (
            [*THREE_TASKS, "trainer.task_affinity=true", "sharing=single_task"],
            "measures a step on the parameters the tasks share, but sharing=single_task shares "
            "none; use sharing=hard, or set trainer.task_affinity=false",
        ),
        (
            [*TINY, "trainer.task_affinity=true", "+task@tasks.class=classification"]
            + ["sharing=two_stage", "sharing.stage1_epochs=1"],
            "measures a step on every task's loss, but sharing=two_stage trains some tasks in "
            "one stage and the others in the next; set trainer.task_affinity=false",
        ),
        (
            [*THREE_TASKS, "trainer.task_affinity=true", "sharing.shared_layers=0"],
            "measures a step on the parameters the tasks share, but sharing=hard with "
            "sharing.shared_layers=0 shares none; use sharing=hard, or set "
            "trainer.task_affinity=false",
        ),
    ],
)
def test_affinity_with_nothing_to_measure_is_refused_before_training(tmp_path, overrides, problem):
    result = run_cli(tmp_path, "train", *overrides)  # refused before the first step
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"mtlrun: error: trainer.task_affinity=true {problem}\n"
    assert not list((tmp_path / "outputs" / "runs").rglob("meta.json"))


def test_report_groups_beyond_the_tasks_says_it_chooses_among_as_many_groups_as_tasks(tmp_path):
    run_dir = tmp_path / "run"
    train(compose_config([*THREE_TASKS, "trainer.task_affinity=true"]), run_dir)
    exact = run_cli(tmp_path, "report", str(run_dir), "groups=3", check=True)
    chosen = json.loads((run_dir / "report.json").read_text())["rows"][0]["affinity"]
    beyond = run_cli(tmp_path, "report", str(run_dir), "groups=7", check=True)
    assert beyond.stderr == (
        "mtlrun: warning: groups=7 is more than the 3 tasks of c1, and no choice needs more "
        "groups than tasks: its choice is of at most 3\n"
    )
    assert "warning" not in exact.stderr
    assert json.loads((run_dir / "report.json").read_text())["rows"][0]["affinity"] == chosen
    assert "TAG's choice of at most 3 groups is" in (run_dir / "report.md").read_text()
