"""`mtlrun train -m`: every job gets its run folder, sweep.json lists them, a failed job does
not stop the others but makes the exit status non-zero; joblib and Optuna sweeps."""

import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import mtlrun.commands.train as train_command
import mtlrun.lifecycle as lifecycle
from mtlrun.compose import check_optimized_metric
from mtlrun.errors import ConfigError
from mtlrun.report.build import write_report
from mtlrun.report.document import Table
from tests.conftest import TINY, compose_config
from tests.helpers import run_cli, run_mtlrun

# Each job: 192 training examples, 2 epochs, a small VAE, no importance-weighted bound.
SMALL = [
    *(arg for arg in TINY if not arg.startswith(("dataset.n_train=", "dataset.val_size="))),
    "dataset.n_train=256",
    "dataset.val_size=64",
    "backbone.hidden_dims=[32]",
    "tasks.reconstruction.iw_samples=0",
]


def the_sweep(tmp_path: Path) -> Path:
    (sweep,) = (tmp_path / "outputs" / "multirun").glob("*/*")
    return sweep


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_two_by_two_sweep_writes_four_runs_sweep_json_and_a_report(tmp_path):
    result = run_cli(
        tmp_path, "train", "-m", *SMALL, "trainer.epochs=1", "seed=0,1", "backbone.latent_dim=4,8"
    )
    assert result.returncode == 0, result.stderr
    sweep = the_sweep(tmp_path)
    assert result.stdout.splitlines()[-1] == str(sweep.resolve())
    assert re.fullmatch(r"\d\d-\d\d-\d\d-\d{6}_default", sweep.name)  # microseconds

    jobs = read_json(sweep / "sweep.json")["jobs"]
    assert [job["job"] for job in jobs] == [0, 1, 2, 3]
    assert {job["status"] for job in jobs} == {"completed"}
    settings = {
        tuple(o for o in job["overrides"] if o.startswith(("seed=", "backbone.latent_dim=")))
        for job in jobs
    }
    assert settings == {
        (f"seed={seed}", f"backbone.latent_dim={latent}") for seed in (0, 1) for latent in (4, 8)
    }
    for job in jobs:
        run = sweep / job["run_dir"]
        assert read_json(run / "meta.json")["status"] == "completed"
        assert "test/reconstruction/nelbo" in read_json(run / "summary.json")["metrics"]

    # The report command itself is tested in test_report.py.
    runs_table, configs_table = [b for b in write_report(sweep, []) if isinstance(b, Table)]
    assert sorted((row[1], row[2]) for row in runs_table.rows) == [
        ("0", "4"),
        ("0", "8"),
        ("1", "4"),
        ("1", "8"),
    ]
    assert [row[2] for row in configs_table.rows] == ["2", "2"]  # two seeds each
    # Without single-task runs, the rank is by mean rank over the primary metrics (MR).
    assert sorted(row[3] for row in configs_table.rows) == ["1", "2"]
    assert sorted(row[4] for row in configs_table.rows) == ["1.00", "2.00"]
    assert all(" ± " in cell for row in configs_table.rows for cell in row[5:])


def test_a_failed_job_does_not_stop_the_sweep_and_the_exit_status_says_so(tmp_path):
    """A job that fails while it runs (here: its data cannot give the validation split it asks
    for) is recorded, and the sweep goes on; a value its schema refuses stops the sweep before
    any job (tests/test_compose.py)."""
    result = run_cli(tmp_path, "train", "-m", *SMALL, "trainer.epochs=1", "dataset.val_size=300,64")
    assert result.returncode == 1
    sweep = the_sweep(tmp_path)
    jobs = read_json(sweep / "sweep.json")["jobs"]
    assert [(job["status"], job.get("error")) for job in jobs] == [
        ("failed", "dataset.val_size=300 must be at least 0 and below the 256 training examples"),
        ("completed", None),
    ]
    assert read_json(sweep / "1" / "summary.json")["metrics"]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mtlrun: error:")]
    assert errors == [
        f"mtlrun: error: job #0 ({sweep.resolve() / '0'}): dataset.val_size=300 must be at "
        "least 0 and below the 256 training examples",
        f"mtlrun: error: 1 of 2 jobs failed (#0); see {sweep.resolve() / 'sweep.json'}",
    ]


def test_an_unexpected_error_keeps_its_traceback_in_the_run_folder(tmp_path, monkeypatch, capsys):
    def broken_train(cfg, run_dir, resume=False, ranks=None):
        raise RuntimeError("a bug\nwith details")

    monkeypatch.setattr(lifecycle, "train", broken_train)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["mtlrun train", "-m", *SMALL, "seed=0,1"])
    try:
        with pytest.raises(SystemExit) as exit:
            train_command.main()
    finally:
        GlobalHydra.instance().clear()
    assert exit.value.code == 1
    sweep = the_sweep(tmp_path)
    for job in ("0", "1"):
        traceback = (sweep / job / "error.txt").read_text()
        assert traceback.startswith("Traceback") and "RuntimeError: a bug" in traceback
    stderr = capsys.readouterr().err
    assert f"RuntimeError: a bug; traceback in {sweep.resolve() / '1' / 'error.txt'}" in stderr
    assert "Traceback" not in stderr
    statuses = [job["status"] for job in read_json(sweep / "sweep.json")["jobs"]]
    assert statuses == ["failed", "failed"]


@pytest.mark.slow
def test_joblib_launcher_runs_the_jobs_in_parallel_processes(tmp_path):
    result = run_mtlrun(
        tmp_path,
        "train",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *SMALL,
        "trainer.epochs=1",
        "seed=0,1",
    )
    assert result.returncode == 0, result.stderr
    sweep = the_sweep(tmp_path)
    jobs = read_json(sweep / "sweep.json")["jobs"]
    assert [(job["run_dir"], job["status"]) for job in jobs] == [
        ("0", "completed"),
        ("1", "completed"),
    ]
    # The workers see the command line as typed: the dispatcher passes it in the environment.
    meta = [read_json(sweep / job["run_dir"] / "meta.json") for job in jobs]
    assert all(m["command"].startswith("mtlrun train -m hydra/launcher=joblib") for m in meta)


def test_optuna_search_optimises_the_named_metric_and_keeps_its_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"

    def search(trials: int, where: Path) -> subprocess.CompletedProcess:
        return run_cli(
            where,
            "train",
            "+experiment=vae_mnist",
            "hparams_search=vae_optuna",
            f"hydra.sweeper.n_trials={trials}",
            f"hydra.sweeper.storage='{storage}'",
            *SMALL,
            "dataset.target_name=digit",
            "trainer.epochs=1",
        )

    result = search(2, tmp_path)
    assert result.returncode == 0, result.stderr
    sweep = the_sweep(tmp_path)
    values = [
        read_json(run / "summary.json")["val_metrics"]["val/reconstruction/nelbo"]
        for run in sorted(path for path in sweep.iterdir() if path.is_dir())
    ]
    assert len(values) == 2
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == pytest.approx(min(values))
    assert set(best.best_params) == {"backbone.latent_dim", "optim.lr", "backbone.beta"}
    # A second search with the same storage continues the study: 2 + 1 trials.
    again = tmp_path / "again"
    again.mkdir()
    assert search(1, again).returncode == 0
    assert len(optuna.load_study(study_name="vae_optuna", storage=storage).trials) == 3


def test_optimized_metric_is_checked_against_the_config_and_the_sweeper():
    base = [*TINY, "+task@tasks.class=classification"]
    check_optimized_metric(compose_config([*base, "optimized_metric=val/class/acc"]))
    with pytest.raises(ConfigError, match="choose one of: val/loss, val/reconstruction/loss"):
        check_optimized_metric(compose_config([*base, "optimized_metric=val/class/nelbo"]))
    assert train_command.objective(compose_config(base), {"val_metrics": {}}) is None
    summary = {"val_metrics": {"val/class/acc": 0.75}, "metrics": {"test/class/acc": 0.5}}
    chosen = compose_config([*base, "optimized_metric=val/class/acc"])
    assert train_command.objective(chosen, summary) == 0.75
    with pytest.raises(ConfigError, match="set hydra.sweeper.direction=maximize"):
        check_optimized_metric(
            compose_config([*base, "optimized_metric=val/class/acc"]), "minimize"
        )


def test_selection_on_the_test_split_is_refused(tmp_path):
    with pytest.raises(
        ConfigError,
        match="optimized_metric=test/class/acc is a test metric; .* "
        "optimise the validation metric val/class/acc instead",
    ):
        check_optimized_metric(
            compose_config(
                [
                    *TINY,
                    "~task@tasks.reconstruction",
                    "+task@tasks.class=classification",
                    "optimized_metric=test/class/acc",
                ]
            )
        )
    with pytest.raises(ConfigError, match="needs a validation split, but dataset.val_size=0"):
        check_optimized_metric(
            compose_config(
                [
                    *TINY,
                    "~task@tasks.reconstruction",
                    "+task@tasks.class=classification",
                    "dataset.val_size=0",
                    "optimized_metric=val/class/acc",
                ]
            )
        )
    result = run_cli(
        tmp_path,
        "train",
        *TINY,
        "~task@tasks.reconstruction",
        "+task@tasks.class=classification",
        "optimized_metric=test/class/acc",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mtlrun: error: optimized_metric=test/class/acc is a test metric; selecting on the test "
        "split biases the test numbers, so optimise the validation metric val/class/acc instead"
    ]


def test_an_optuna_search_on_a_test_metric_is_refused_before_its_first_trial(tmp_path):
    result = run_cli(
        tmp_path,
        "train",
        "-m",
        *SMALL,
        "hparams_search=vae_optuna",
        "optimized_metric=test/reconstruction/nelbo",
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "mtlrun: error: optimized_metric=test/reconstruction/nelbo is a test metric; selecting "
        "on the test split biases the test numbers, so optimise the validation metric "
        "val/reconstruction/nelbo instead\n"
    )
    assert not (tmp_path / "outputs").exists()  # no trial ran


def test_a_search_whose_every_trial_fails_ends_in_one_line(tmp_path):
    """Optuna ends such a search with "No trials are completed yet" and its traceback; each
    job has said why it failed, so mtlrun says that no trial completed."""
    result = run_cli(
        tmp_path,
        "train",
        "-m",
        *SMALL,
        "hparams_search=vae_optuna",
        "hydra.sweeper.n_trials=2",
        "dataset.val_size=256",  # all 256 training examples: found once the data is loaded
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mtlrun: error:")]
    assert len(errors) == 3, result.stderr
    assert all("dataset.val_size=256 must be at least 0 and below" in line for line in errors[:2])
    assert errors[2] == (
        "mtlrun: error: no trial of the search completed: every job failed, each with its "
        "error above"
    )


def test_dropping_a_task_an_experiment_configures_drops_its_settings(tmp_path):
    """`synthetic_regression` sets `tasks.y3.weight`; `~task@tasks.y3` takes y3 out of the
    defaults, and the weight it leaves behind goes with it, in a run and in every job."""
    small = ["dataset.n_train=256", "dataset.n_test=64", "dataset.val_size=64", "device=cpu"]
    small += ["trainer.epochs=1", "trainer.progress=false"]
    dropped = ["+experiment=synthetic_regression", "~task@tasks.y3", *small]
    run = run_cli(tmp_path, "train", *dropped, "hydra.run.dir=run", check=True)
    sweep = run_cli(tmp_path, "train", "-m", *dropped, "seed=0,1", "hydra.sweep.dir=sweep")
    assert sweep.returncode == 0, sweep.stderr
    assert run.returncode == 0
    for folder in ("run", "sweep/0", "sweep/1"):
        config = OmegaConf.load(tmp_path / folder / "config.resolved.yaml")
        assert list(config.tasks) == ["y0", "y1", "y2"], folder

    import mtlrun.compose

    assert list(mtlrun.compose.compose(dropped).tasks) == ["y0", "y1", "y2"]
    # Settings without a type that no deletion left are the user's: refused, as before.
    for extra in (["tasks.y3.weight=2"], ["+tasks.y4.weight=2"]):
        result = run_cli(tmp_path, "train", *dropped, *extra)
        name = extra[0].split(".")[1]
        assert result.returncode == 2, result.stderr
        assert result.stderr == (
            f"mtlrun: error: tasks.{name} has settings (weight) but no type; add it as "
            f"+task@tasks.{name}=TYPE, one of: classification, denoising, depth, generation, "
            "normal, reconstruction, regression, segmentation\n"
        )
