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
from mtlrun.loop import train
from mtlrun.report.grouping import best_groups, partitions
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
        task_losses=lambda output, batch: losses_of(output),
    )
    affinity = TaskAffinity(experiment, every=1)
    affinity.measure(0, losses_of(model(torch.zeros(1))), torch.zeros(1), None)
    matrix = torch.tensor(affinity.epoch_matrix())
    theta = model.theta.detach()
    for i, centre in enumerate(CENTRES):
        stepped = theta - 0.1 * (theta - centre)  # θ − η ∇_θ L_i
        for j in range(len(CENTRES)):
            expected = 1 - losses_of(stepped)[j] / losses_of(theta)[j]  # their eq. 3
            torch.testing.assert_close(matrix[i, j], expected)
    assert matrix[0, 1] > 0 > matrix[0, 2]  # c₀ lies toward c₁, away from c₂


def test_the_best_grouping_keeps_the_tasks_that_help_each_other_together():
    assert len(list(partitions(["a", "b", "c", "d"], 2))) == 7  # Stirling S(4, 2)
    tasks = ["a", "b", "c", "d"]
    help_within = {("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")}
    matrix = [
        [None if i == j else (0.3 if (i, j) in help_within else -0.2) for j in tasks] for i in tasks
    ]
    groups, score = best_groups(tasks, matrix, 2)
    assert sorted(map(sorted, groups)) == [["a", "b"], ["c", "d"]]
    assert score == pytest.approx(4 * 0.3)


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
    assert sorted(len(group) for group in affinity["groups"]) == [1, 2]
    groups = "[" + ",".join("[" + ",".join(g) + "]" for g in affinity["groups"]) + "]"
    assert f"sharing=grouped 'sharing.groups={groups}'" in (run_dir / "report.md").read_text()

    # The suggestion trains as it is written.
    grouped = build(compose_config([*THREE_TASKS, "sharing=grouped", f"sharing.groups={groups}"]))
    assert len(grouped.model.networks) == 2


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
