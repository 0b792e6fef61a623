"""The `mtlrun` command as a user types it: in this process (`run_cli`), and the installed
executable and `python -m mtlrun` in real processes."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import TINY
from tests.helpers import mtlrun_command, run_cli


def test_help_lists_the_commands_and_experiments(tmp_path):
    result = run_cli(tmp_path, "--help")
    assert result.returncode == 0
    for word in [
        "train",
        "reproduce",
        "resume",
        "eval",
        "sample",
        "report",
        "list",
        "vae_mnist",
        "cnn_cifar10",
    ]:
        assert word in result.stdout


@pytest.mark.parametrize("program", ["mtlrun", "python -m mtlrun"])
def test_the_installed_command_and_python_m_mtlrun_reach_the_dispatcher(tmp_path, program):
    """The other tests call `mtlrun.cli.main()` in this process; this one starts the programs a
    user types: the console script that pip installed, and `python -m mtlrun`."""
    command = mtlrun_command()
    if program == "mtlrun":
        command = [str(Path(sys.executable).with_name("mtlrun"))]
        if not Path(command[0]).is_file():
            pytest.skip("mtlrun is not installed beside this Python (pip install -e .)")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*command, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )

    usage = run("--help")
    assert usage.returncode == 0, usage.stderr
    assert usage.stdout == run_cli(tmp_path, "--help").stdout
    wrong = run("frobnicate")
    assert wrong.returncode == 2
    assert wrong.stderr == (
        "mtlrun: error: unknown command 'frobnicate'; choose one of: train, reproduce, resume, "
        "eval, sample, report, list\n"
    )


def test_output_its_reader_cuts_short_ends_quietly(tmp_path):
    """`mtlrun train --help | head -1`: the pipe closes before mtlrun has written, which ends
    it with the shell's status for SIGPIPE, and no traceback."""
    process = subprocess.Popen(
        mtlrun_command("train", "--help"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # before the imports are done: every write fails
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 141
    assert stderr == ""


def test_train_an_experiment_prints_its_run_folder_last(tmp_path):
    result = run_cli(
        tmp_path,
        "train",
        "+experiment=vae_mnist",
        *TINY,
        "dataset.target_name=digit",
        "trainer.epochs=1",
    )
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    assert run_dir.is_relative_to(tmp_path / "outputs" / "runs")
    assert run_dir.name.endswith("_vae_mnist")
    # <HH-MM-SS-ffffff>_<name>: unique to the microsecond
    assert len(run_dir.name.split("_")[0].split("-")) == 4
    for name in [
        "meta.json",
        "metrics.jsonl",
        "summary.json",
        "config.resolved.yaml",
        "train.log",
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ]:
        assert (run_dir / name).is_file(), name
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["command"].startswith("mtlrun train +experiment=vae_mnist")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "test/digit/acc" in summary["metrics"]
    assert "test/reconstruction/nelbo" in summary["metrics"]
    assert "epoch 1/1" in result.stdout


def test_multirun_with_two_values_gives_two_folders(tmp_path):
    result = run_cli(
        tmp_path,
        "train",
        "-m",
        *TINY,
        "trainer.epochs=1",
        "~task@tasks.reconstruction",
        "+task@tasks.class=classification",
        "backbone=dense_ae",
        "backbone.latent_dim=4,8",
    )
    assert result.returncode == 0, result.stderr
    summaries = sorted((tmp_path / "outputs" / "multirun").glob("*/*/*/summary.json"))
    assert len(summaries) == 2
    latent = {json.loads((p.parent / "meta.json").read_text())["command"] for p in summaries}
    assert len(latent) == 1  # the same sweep command, two jobs
    configs = [(p.parent / "config.resolved.yaml").read_text() for p in summaries]
    assert any("latent_dim: 4" in c for c in configs) and any("latent_dim: 8" in c for c in configs)


def test_cfg_job_prints_the_composed_config(tmp_path):
    result = run_cli(tmp_path, "train", "+experiment=ae_mnist", "--cfg", "job")
    assert result.returncode == 0, result.stderr
    assert "name: ae_mnist" in result.stdout and "dense_ae" in result.stdout
    assert not (tmp_path / "outputs").exists()


def test_user_mistakes_are_one_line_without_traceback(tmp_path):
    cases = {
        ("train", "backbone=vea"): "backbone='vea' is not known; choose one of: cifar_resnet18, "
        "cnn, conv_vae, dense_ae",
        ("train", "+experiment=nope"): "experiment='nope' is not known; choose one of: ae_mnist",
        ("train", "backbone.latnt=3"): "backbone.latnt is not a key of the config; did you mean "
        "backbone.latent_dim?",
        ("train", "-m", "seed=0,1", "backbone.latnt=2,3"): "backbone.latnt is not a key",
        ("train", "-m", "optim.lr=interval(0.1,1)", "optim.lr_=1"): "did you mean optim.lr?",
        ("train", "a=b=c"): "mismatched input '='",
        ("train", *TINY, "trainer.epochs=abc"): "trainer.epochs: Value 'abc'",
        ("train", *TINY, "backbone.latent_dim=abc"): "backbone.latent_dim: Value 'abc' of type "
        "'str' could not be converted to Integer",
        ("train", "-m", *TINY, "backbone.latent_dim=8,abc"): "backbone.latent_dim: Value 'abc'",
        ("frobnicate",): "unknown command 'frobnicate'; choose one of: train",
    }
    for args, words in cases.items():
        result = run_cli(tmp_path, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not (tmp_path / "outputs" / "multirun").exists()  # no sweep job was started


def test_the_options_of_a_group_include_the_users_config_folders(tmp_path):
    """The choices are Hydra's own list: the registered schemas, mtlrun's YAML files and the
    folders of --config-dir and hydra.searchpath."""
    mine = tmp_path / "mine"
    (mine / "backbone").mkdir(parents=True)
    # An option of one's own extends a registered schema: its defaults, types and checks.
    (mine / "backbone" / "small_vae.yaml").write_text("defaults: [vae]\nhidden_dims: [64]\n")
    choices = (
        "choose one of: cifar_resnet18, cnn, conv_vae, dense_ae, mlp, resnet50_dilated, "
        "segnet, small_vae, vae"
    )
    for folder in (["--config-dir", str(mine)], [f"hydra.searchpath=[file://{mine}]"]):
        wrong = run_cli(tmp_path, "train", *folder, "backbone=small_va")
        assert wrong.stderr == f"mtlrun: error: backbone='small_va' is not known; {choices}\n"
        right = run_cli(tmp_path, "train", *folder, "backbone=small_vae", "--cfg", "job")
        assert right.returncode == 0, right.stderr
        assert "hidden_dims:\n  - 64\n  latent_dim: 20" in right.stdout


def test_a_misspelt_key_or_a_bad_top_level_value_is_one_line_before_any_folder(tmp_path):
    long_name = "x" * 240
    cases = {
        ("trainer.epoch=3",): "trainer.epoch is not a key of the config; "
        "did you mean trainer.epochs?",
        ("backbone.latnt_dim=8",): "backbone.latnt_dim is not a key of the config; "
        "did you mean backbone.latent_dim?",
        ("traner.epochs=3",): "traner.epochs is not a key of the config; "
        "did you mean trainer.epochs?",
        ("backbone=cnn", "backbone.latent_dim=8"): "backbone.latent_dim is not a key of the "
        "config; see its keys with `mtlrun train --cfg job`",
        ("seed=1.5",): "seed=1.5 must be an integer, e.g. seed=0",
        ("seed=abc",): "seed='abc' must be an integer, e.g. seed=0",
        (
            "~task@tasks.reconstruction",
        ): "tasks is empty; add one, e.g. +task@tasks.reconstruction=reconstruction",
        ("name=a/b",): "name='a/b' contains a path separator; a run's name is part of one "
        "folder name, e.g. name=vae_small",
        ("name=..",): "name='..' contains '..'; a run's name is part of one folder name, "
        "e.g. name=vae_small",
        (f"name={long_name}",): f"name='{long_name[:40]}...' is 240 bytes long, too long for "
        "a folder name; use at most 239 bytes",
        ("-m", "--cfg", "job"): "-m and --cfg cannot go together: Hydra runs (--run), sweeps "
        "(-m), prints the config (--cfg) or prints information (--info), one at a time; drop one",
        ("--run", "--cfg", "job"): "--run and --cfg cannot go together: Hydra runs (--run), "
        "sweeps (-m), prints the config (--cfg) or prints information (--info), one at a time; "
        "drop one",
    }
    for args, line in cases.items():
        result = run_cli(tmp_path, "train", *TINY, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr == f"mtlrun: error: {line}\n", args
        assert not (tmp_path / "outputs").exists()


def test_hydras_flags_go_through_mtlruns_error_handling(tmp_path):
    """A wrong flag is one line (not argparse's usage, nor Hydra's traceback), and a bad
    override is the same line with --cfg job, --info or -p as without."""
    cases = {
        ("--cfg", "bogus"): "argument --cfg/-c: invalid choice: 'bogus' (choose from 'job', "
        "'hydra', 'all'); see `mtlrun train --help`",
        ("--cfg",): "argument --cfg/-c: expected one argument; see `mtlrun train --help`",
        ("--info", "bogus"): "argument --info/-i: invalid choice: 'bogus' (choose from 'all', "
        "'config', 'defaults', 'defaults-tree', 'plugins', 'searchpath'); see `mtlrun train "
        "--help`",
        ("--frobnicate",): "unrecognized arguments: --frobnicate; see `mtlrun train --help`",
        ("--experimental-rerun", "gone.pickle"): "--experimental-rerun gone.pickle: no such "
        "file; pass a run's .hydra/config.pickle",
        ("--shell-completion",): "--shell-completion takes one of install=SHELL, "
        "uninstall=SHELL or query=SHELL, SHELL one of: bash, fish, zsh",
        ("-cn", "nope"): "--config-name='nope' is not known; choose one of: train",
        ("--cfg", "job", "trainer.epoch=3"): "trainer.epoch is not a key of the config; did "
        "you mean trainer.epochs?",
        ("--cfg", "hydra", "backbone=vea"): "backbone='vea' is not known; choose one of: "
        "cifar_resnet18, cnn,",
        ("-p", "backbone", "--cfg", "job", "--resolve", "name=é"): "name=é: the value holds "
        "non-ASCII characters (é) that Hydra's override grammar takes only in quotes; quote "
        "it, \"name='é'\"",
        ("--info", "defaults", "+experiment=nope"): "experiment='nope' is not known; choose one "
        "of: ae_mnist, ae_two_stage",
        ("--cfg", "job", "-p", "trainer.epoks"): "-p trainer.epoks: trainer.epoks is not a key "
        "of the config; did you mean trainer.epochs?",
        ("--cfg", "all", "-p", "nowhere"): "-p nowhere: nowhere is not a key of the config; see "
        "its keys with `mtlrun train --cfg job`",
    }
    for args, line in cases.items():
        result = run_cli(tmp_path, "train", *args)
        assert result.returncode == 2, (args, result.stderr)
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"mtlrun: error: {line}"), (args, result.stderr)
        assert "Traceback" not in result.stderr and "usage:" not in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_flags_may_come_between_the_overrides(tmp_path):
    """Hydra's parser takes the overrides as one run of arguments: `a=1 --cfg job b=2` is
    handed to it as `--cfg job a=1 b=2`."""
    result = run_cli(tmp_path, "train", "name=mine", "--cfg", "job", "seed=3", "--resolve")
    assert result.returncode == 0, result.stderr
    assert "name: mine\nseed: 3\n" in result.stdout
    info = run_cli(tmp_path, "train", "seed=3", "--info", "backbone=cnn")
    assert info.returncode == 0, info.stderr
    assert "backbone: cnn" in info.stdout.replace("'", "")


def folder_contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_new_run_never_writes_into_an_existing_run_folder(tmp_path):
    first = run_cli(tmp_path, "train", *TINY, "trainer.epochs=1", "hydra.run.dir=fixed")
    assert first.returncode == 0, first.stderr
    before = folder_contents(tmp_path / "fixed")
    for args in (
        ["hydra.run.dir=fixed"],
        ["hydra.run.dir=fixed", "seed=1", "trainer.epochs=2"],
        [f"hydra.run.dir={tmp_path / 'fixed'}"],
    ):
        result = run_cli(tmp_path, "train", *TINY, *args)
        folder = args[0].split("=", 1)[1]
        assert result.returncode == 2, result.stderr
        assert result.stderr == (
            f"mtlrun: error: {folder} already holds a run; continue it with "
            f"`mtlrun resume {folder}`, or pass another hydra.run.dir\n"
        )
        assert folder_contents(tmp_path / "fixed") == before  # .hydra/ included

    sweep = ["-m", *TINY, "trainer.epochs=1", "hydra.sweep.dir=sweep", "seed=0,1"]
    assert run_cli(tmp_path, "train", *sweep).returncode == 0
    before = folder_contents(tmp_path / "sweep")
    again = run_cli(tmp_path, "train", *sweep)
    assert again.returncode == 2
    assert again.stderr == (
        "mtlrun: error: sweep already holds the runs of a sweep; pass another hydra.sweep.dir, "
        "or continue one of its jobs with `mtlrun resume sweep/N`\n"
    )
    assert folder_contents(tmp_path / "sweep") == before


def test_train_itself_refuses_an_existing_run_folder_the_dispatcher_did_not_see(
    tmp_path, monkeypatch, capsys
):
    from hydra.core.global_hydra import GlobalHydra

    from mtlrun.commands import train as train_command

    folder = tmp_path / "fixed"
    folder.mkdir()
    (folder / "meta.json").write_text('{"status": "completed"}')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["mtlrun train", *TINY, f"hydra.run.dir={folder}"])
    try:
        with pytest.raises(SystemExit) as exit:
            train_command.main()
    finally:
        GlobalHydra.instance().clear()
    assert exit.value.code == 2
    assert capsys.readouterr().err == (
        f"mtlrun: error: {folder} already holds a run; continue it with `mtlrun resume "
        f"{folder}`, or pass another hydra.run.dir\n"
    )
    assert (folder / "meta.json").read_text() == '{"status": "completed"}'
    assert not (folder / "checkpoints").exists()


def test_reproduce_never_reuses_a_folder_made_in_the_same_microsecond(tmp_path, monkeypatch):
    from datetime import datetime

    from mtlrun import runfolder

    times = iter([datetime(2026, 1, 2, 3, 4, 5, 6)] * 2 + [datetime(2026, 1, 2, 3, 4, 5, 7)])

    class Clock:
        @staticmethod
        def now():
            return next(times)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runfolder, "datetime", Clock)
    taken = Path("outputs/runs/2026-01-02/03-04-05-000006_x_reproduce")
    taken.mkdir(parents=True)
    (taken / "meta.json").write_text("{}")
    assert runfolder.new_run_dir("x_reproduce") == Path(
        "outputs/runs/2026-01-02/03-04-05-000007_x_reproduce"
    )
    assert [p.name for p in taken.iterdir()] == ["meta.json"]


def test_missing_data_is_a_one_line_message_naming_the_folder(tmp_path):
    empty = tmp_path / "no_data_here"
    empty.mkdir()
    result = run_cli(
        tmp_path,
        "train",
        "dataset=mnist",
        f"dataset.root={empty}",
        "dataset.download=false",
        "device=cpu",
    )
    assert result.returncode == 2
    assert "MNIST is not in" in result.stderr and str(empty) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()  # found before the run started: no folder


def test_the_wheel_ships_the_configs(tmp_path):
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("mtlrun-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in [
        "train.yaml",
        "experiment/vae_mnist.yaml",
        "method/hard_equal.yaml",
        "hparams_search/vae_optuna.yaml",
    ]:
        assert f"mtlrun/configs/{config}" in names, config
    # What puts the plug-ins' configs/ on Hydra's search path, where Hydra finds its plug-ins.
    assert "hydra_plugins/mtlrun_plugin_configs/__init__.py" in names


def test_sample_n_is_bounded_so_the_grid_stays_loadable(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for n in ("0", "1025", "1000000"):
        result = run_cli(tmp_path, "sample", str(run), f"n={n}")
        assert result.returncode == 2
        assert result.stderr == (
            f"mtlrun: error: n={n} must be between 1 and 1024: a grid of more images makes a PNG "
            "too large for image viewers to open; draw several grids with different seed=S "
            "instead\n"
        )
    assert [p.name for p in tmp_path.iterdir()] == ["run"] and not any(run.iterdir())
