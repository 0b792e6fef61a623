"""DDP on the CPU with gloo and two real processes: `trainer.devices=2` and torchrun give one run
folder, written by rank 0; a step on two shards of a batch is the step one process takes on the
whole batch, for every weighting (the aggregators' Jacobian and the other methods' measurements
are reduced before they weigh); an interrupted run resumes to the numbers of an uninterrupted
one; an epoch of MNIST ends within 0.5 points of one process."""

import json
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from mlflow.tracking import MlflowClient

from mtlrun.api import compose
from mtlrun.data import Batch
from mtlrun.distributed import Ranks, join, leave
from mtlrun.experiment import build
from mtlrun.loop import Progress, StopSignals, train_epoch
from mtlrun.terminal import Reporter
from mtlrun.weighting import WEIGHTINGS
from tests.conftest import needs_mnist
from tests.helpers import run_cli, run_mtlrun, start_mtlrun

# One batch of 256 is the whole training split: an epoch is one step. Three tasks (the default
# reconstruction, two classifiers) on a shared dense trunk; SGD, whose update is the gradient
# (Adam's first step is near its sign, which would hide a wrongly scaled gradient).
ONE_STEP = [
    "dataset=synthetic",
    "dataset.target_name=digit",
    "dataset.n_train=320",
    "dataset.val_size=64",
    "backbone=dense_ae",
    "+task@tasks.digit=classification",
    "+task@tasks.parity=classification",
    "optim=sgd",
    "optim.lr=0.1",
    "trainer.batch_size=256",
    "trainer.deterministic=true",
    "device=cpu",
]
# Every weighting, and the variants that measure something else before weighing.
WEIGHTING_CHOICES = [
    *([f"weighting={name}"] for name in WEIGHTINGS.names),
    ["weighting=gradnorm", "weighting.gradient_of=representation"],
    ["weighting=mgda_ub", "weighting.normalization=loss+"],
]


def one_step(ranks: Ranks, overrides: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's parameters before and after one training step, flattened."""
    experiment = build(compose([*ONE_STEP, *overrides]), ranks)
    model = experiment.model

    def flat() -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in model.parameters()]).clone()

    before = flat()
    with Reporter(None).progress() as bar:
        train_epoch(experiment, torch.Generator().manual_seed(0), Progress(), bar, StopSignals())
    return before, flat()


def step_on_two_ranks(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    cfg = compose(ONE_STEP)
    ranks = join(cfg, rank, 2, rank, f"file://{folder}/rendezvous")
    steps = {" ".join(choice): one_step(ranks, choice) for choice in WEIGHTING_CHOICES}
    torch.save(steps, f"{folder}/rank{rank}.pt")
    leave(ranks)


@pytest.mark.slow
def test_a_step_on_two_ranks_is_the_step_on_the_whole_batch_for_every_weighting(tmp_path):
    mp.spawn(step_on_two_ranks, args=(str(tmp_path),), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    torch.set_num_threads(1)
    for choice in WEIGHTING_CHOICES:
        key = " ".join(choice)
        before, after = one_step(Ranks(), choice)
        update = after - before
        assert update.norm() > 1e-3, key  # a real step, so that equality says something
        for rank in ranks:
            two_before, two_after = rank[key]
            torch.testing.assert_close(two_before, before, rtol=0, atol=0)
            torch.testing.assert_close(
                two_after - two_before,
                update,
                rtol=1e-5,
                atol=1e-7,
                msg=lambda message, key=key: f"{key}: {message}",
            )
        # Both ranks hold the same weights after the step, to the bit.
        assert torch.equal(ranks[0][key][1], ranks[1][key][1]), key


def test_a_rank_gets_contiguous_rows_and_a_weightless_stand_in_when_none_are_left():
    batch = Batch(torch.arange(5.0)[:, None], {"y": torch.arange(5)})
    first, second = Ranks(rank=0, size=2), Ranks(rank=1, size=2)
    rows, has_rows = first.shard(batch)
    assert rows.targets["y"].tolist() == [0, 1] and has_rows and first.share == 0.4
    rows, has_rows = second.shard(batch)
    assert rows.targets["y"].tolist() == [2, 3, 4] and has_rows and second.share == 0.6
    one_row = Batch(batch.inputs[3:4], {"y": batch.targets["y"][3:4]})
    rows, has_rows = first.shard(one_row)
    assert rows.targets["y"].tolist() == [3] and not has_rows and first.share == 0.0
    rows, has_rows = second.shard(one_row)
    assert rows.targets["y"].tolist() == [3] and has_rows and second.share == 1.0


# A run of several epochs, small enough for CI: 112 steps an epoch, so that a signal lands
# inside one.
SMALL = [
    "dataset=synthetic",
    "dataset.target_name=digit",
    "backbone=dense_ae",
    "backbone.hidden_dims=[64]",
    "+task@tasks.digit=classification",
    "weighting=upgrad",
    "trainer.epochs=3",
    "trainer.batch_size=16",
    "trainer.deterministic=true",
    "trainer.progress=false",
    "device=cpu",
]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    """An uninterrupted `trainer.devices=2` run of SMALL, logged to MLflow too."""
    folder = tmp_path_factory.mktemp("ddp")
    run_dir = folder / "reference"
    args = [*SMALL, "trainer.devices=2", "logger=mlflow", "name=ddp", f"hydra.run.dir={run_dir}"]
    run_mtlrun(folder, "train", *args, check=True)
    return run_dir


@pytest.mark.slow
def test_trainer_devices_writes_one_run_folder_from_rank_zero(two_process_run):
    meta = json.loads((two_process_run / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["ranks"] == 2
    records = [json.loads(line) for line in (two_process_run / "metrics.jsonl").open()]
    assert [(r["epoch"], r["split"]) for r in records] == [
        (1, "train"), (1, "val"), (2, "train"), (2, "val"), (3, "train"), (3, "val"), (3, "test"),
    ]  # fmt: skip
    log = (two_process_run / "train.log").read_text()
    assert log.count("epoch 3/3") == 1 and log.count("test (final model)") == 1
    config = (two_process_run / "config.resolved.yaml").read_text()
    assert "devices: 2" in config
    # One MLflow run, rank 0's, with each epoch's metrics once.
    store = two_process_run.parent / "outputs" / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "ddp"]
    (run,) = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(run.info.run_id, "val/digit/acc")
    assert [m.step for m in history] == [1, 2, 3]


@pytest.mark.slow
def test_torchrun_trains_one_run_with_the_numbers_of_trainer_devices(tmp_path, two_process_run):
    torchrun = (sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2")
    result = run_mtlrun(tmp_path, "train", *SMALL, launcher=torchrun)
    assert result.returncode == 0, result.stderr
    runs = list((tmp_path / "outputs" / "runs").glob("*/*"))
    assert len(runs) == 1, runs  # rank 1's Hydra made no folder of its own
    assert result.stdout.strip().splitlines()[-1] == str(runs[0])
    assert not list(tmp_path.glob("**/.hydra"))[1:]  # rank 0's only
    metrics = json.loads((runs[0] / "summary.json").read_text())["metrics"]
    expected = json.loads((two_process_run / "summary.json").read_text())["metrics"]
    assert metrics == pytest.approx(expected, rel=1e-6)
    # `mtlrun resume` starts two processes, as the run had
    assert "devices: 2" in (runs[0] / "config.resolved.yaml").read_text()


@pytest.mark.slow
def test_an_interrupted_ddp_run_resumes_to_the_numbers_of_an_uninterrupted_one(
    tmp_path, two_process_run
):
    run_dir = tmp_path / "run"
    args = [*SMALL, "trainer.devices=2", f"hydra.run.dir={run_dir}"]
    process = start_mtlrun(tmp_path, "train", *args)
    log, deadline = run_dir / "train.log", time.monotonic() + 300
    while not (log.exists() and "epoch 1/3" in log.read_text()):  # inside epoch 2, then
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "SIGINT: stopped; continue with `mtlrun resume" in stdout
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "interrupted"

    run_mtlrun(tmp_path, "resume", str(run_dir), check=True)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    assert [r["epoch"] for r in records if r["split"] == "train"] == [1, 2, 3]
    metrics = json.loads((run_dir / "summary.json").read_text())["metrics"]
    expected = json.loads((two_process_run / "summary.json").read_text())["metrics"]
    assert metrics == expected


def readme_line(start: str, holding: str) -> list[str]:
    """The README's command line that starts so and holds `holding`, split into words."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    lines = readme.splitlines()
    return next(line.split() for line in lines if line.startswith(start) and holding in line)


@pytest.mark.slow
@needs_mnist
def test_the_readme_ddp_commands_end_an_epoch_of_mnist_within_half_a_point_of_one_process(
    tmp_path,
):
    """The README's two DDP commands, for one epoch: the run on two processes and the run
    under torchrun each end within 0.5 points of test accuracy of the one-process run."""
    devices = readme_line("mtlrun train", "trainer.devices=2")
    torchrun = readme_line("torchrun --nproc-per-node 2 -m mtlrun train", "weighting=upgrad")
    assert "weighting=upgrad" in devices
    one_epoch = ["trainer.epochs=1", "device=cpu", "trainer.progress=false"]
    one = [word for word in devices[1:] if word != "trainer.devices=2"]
    runs = {
        "one process": run_mtlrun(tmp_path, *one, *one_epoch, check=True),
        "trainer.devices=2": run_mtlrun(tmp_path, *devices[1:], *one_epoch, check=True),
        "torchrun": run_mtlrun(
            tmp_path,
            *torchrun[torchrun.index("mtlrun") + 1 :],
            *one_epoch,
            launcher=(sys.executable, "-m", "torch.distributed.run", *torchrun[1:3]),
            check=True,
        ),
    }
    metrics = {
        how: json.loads(Path(result.stdout.split()[-1], "summary.json").read_text())["metrics"]
        for how, result in runs.items()
    }
    for how in ("trainer.devices=2", "torchrun"):
        for task in ("digit", "parity", "magnitude"):
            key = f"test/{task}/acc"
            difference = abs(metrics[how][key] - metrics["one process"][key])
            assert difference < 0.005, (how, key, metrics[how][key], metrics["one process"][key])


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["train", "trainer.devices=0"], {}, "trainer.devices=0"),
        (["resume", "outputs/x"], {"WORLD_SIZE": "2"}, "under torchrun only `mtlrun train` runs"),
        (
            ["train", "-m", "seed=0,1"],
            {"WORLD_SIZE": "2"},
            "a sweep (-m) cannot run under torchrun",
        ),
    ],
)
def test_ddp_mistakes_are_one_line(tmp_path, args, env, message):
    result = run_cli(tmp_path, *args, env=env)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()
