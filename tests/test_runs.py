"""A run folder from someone else is data: rebuilding it evaluates no interpolation and writes
nowhere outside the output tree."""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mtlrun.errors import UserError
from mtlrun.rebuild import run_config
from tests.conftest import TINY, compose_config
from tests.helpers import run_cli


def saved_run(folder: Path, **changes: str) -> Path:
    """A run folder as `mtlrun train` leaves it (config, meta, summary, checkpoints), with
    `changes` (dotted key: YAML text) written into its config.resolved.yaml."""
    composed = compose_config(
        [
            *TINY,
            "~task@tasks.reconstruction",
            "+task@tasks.class=classification",
            "backbone=dense_ae",
            "trainer.epochs=1",
        ]
    )
    cfg = OmegaConf.create(OmegaConf.to_container(composed))  # as saved: plain, untyped YAML
    text = OmegaConf.to_yaml(cfg)
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = cfg
        for parent in parents:
            node = node[parent]
        node[leaf] = "PLACEHOLDER"
        text = OmegaConf.to_yaml(cfg).replace("PLACEHOLDER", value)
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.resolved.yaml").write_text(text)
    (folder / "meta.json").write_text(json.dumps({"status": "interrupted", "device": "cpu"}))
    (folder / "summary.json").write_text(json.dumps({"metrics": {"test/loss": 1.0}}))
    for checkpoint in ("best.pt", "last.pt"):
        (folder / "checkpoints" / checkpoint).write_bytes(b"never read")
    return folder


COMMANDS = [("reproduce",), ("resume",), ("eval",), ("sample", "n=4")]
# Key: (YAML text, the line's start, the commands tried: every command for one refused name
# and one refused interpolation, one command for the others).
BAD = {
    "name": ("'../../escaped'", "name='../../escaped' contains a path separator", COMMANDS),
    "dataset.root": (
        "${oc.env:HOME}",
        "dataset.root='${oc.env:HOME}' is an interpolation, and a saved config is data that "
        "mtlrun never evaluates; write the value itself in its place",
        COMMANDS,
    ),
    "name ": ("'..'", "name='..' contains '..'", COMMANDS[:1]),
    "dataset.val_size": (
        "${oc.decode:'1'}",
        "dataset.val_size=\"${oc.decode:'1'}\" is an interpolation",
        COMMANDS[2:3],
    ),
    "name  ": ("run_${now:%H-%M}", "name='run_${now:%H-%M}' is an interpolation", COMMANDS[:1]),
}


@pytest.mark.parametrize("case", BAD)
def test_a_saved_config_with_a_path_name_or_an_interpolation_is_refused(tmp_path, case):
    value, words, commands = BAD[case]
    run = saved_run(tmp_path / "theirs" / "run", **{case.strip(): value})
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for command in commands:
        result = run_cli(tmp_path, command[0], str(run), *command[1:])
        assert result.returncode == 2, (command, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"mtlrun: error: {run / 'config.resolved.yaml'}: {words}"
        ), (command, result.stderr)
        # Nothing written: no stray folder, neither in the output tree nor beside it.
        assert sorted(str(p) for p in tmp_path.rglob("*")) == before, command


def test_the_whole_messages_of_a_refused_name_and_interpolation(tmp_path):
    run = saved_run(tmp_path / "a", name="'x/y'")
    with pytest.raises(UserError) as error:
        run_config(run)
    assert str(error.value) == (
        f"{run / 'config.resolved.yaml'}: name='x/y' contains a path separator; a run's name is "
        "part of one folder name, e.g. name=vae_small"
    )
    run = saved_run(tmp_path / "b", **{"optim.lr": "${oc.env:LR}"})
    with pytest.raises(UserError) as error:
        run_config(run)
    assert str(error.value) == (
        f"{run / 'config.resolved.yaml'}: optim.lr='${{oc.env:LR}}' is an interpolation, and a "
        "saved config is data that mtlrun never evaluates; write the value itself in its place"
    )


def test_the_resolved_config_is_the_record_and_the_cache_is_this_machines(tmp_path):
    run = saved_run(tmp_path / "run", **{"dataset.cache_dir": str(tmp_path / "elsewhere")})
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("name: ${oc.env:HOME}\nseed: ${now:%S}\n")
    cfg = run_config(run)
    assert cfg.name == "default" and cfg.seed == 0
    assert cfg.dataset.cache_dir is None  # $MTLRUN_CACHE, else ~/.cache/mtlrun


def test_reproduce_refuses_a_name_override_that_is_a_path_before_making_a_folder(tmp_path):
    run = saved_run(tmp_path / "run")
    for name, words in (
        ("../../x", "name='../../x' contains a path separator"),
        (
            "x" * 230,
            f"name='{'x' * 40}...' is 230 bytes long, too long for a folder name; use at "
            "most 229 bytes",
        ),
    ):
        result = run_cli(tmp_path, "reproduce", str(run), f"name={name}")
        assert result.returncode == 2
        assert result.stderr.startswith(f"mtlrun: error: {words}"), result.stderr
        assert len(result.stderr.splitlines()) == 1
        assert not (tmp_path / "outputs").exists()
