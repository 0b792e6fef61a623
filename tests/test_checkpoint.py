"""Checkpoints that torch would not load safely are refused in one line, without torch's advice
to load them with weights_only=False."""

import os
import pickle
from pathlib import Path

import pytest
import torch

from mtlrun.checkpoint import load_checkpoint, save_checkpoint
from mtlrun.errors import UserError
from mtlrun.runfolder import write_json
from tests.conftest import TINY, compose_config
from tests.helpers import run_cli


class RunsCode:
    """Unpickling this runs `touch <marker>`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def damaged(tmp_path: Path) -> dict[str, str]:
    """Bad checkpoints, written into tmp_path, and the reason each message gives."""
    good = tmp_path / "good.pt"
    torch.save({"model": {"w": torch.ones(3)}}, good)
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[:300])
    with open(tmp_path / "plain_pickle.pt", "wb") as f:
        pickle.dump({"model": [1, 2]}, f)
    return {
        "empty.pt": "the file is empty",
        "junk.pt": "not a PyTorch checkpoint",
        "truncated.pt": "a damaged or truncated zip archive",
        "plain_pickle.pt": "not a PyTorch checkpoint",
    }


def test_damaged_checkpoints_say_what_is_wrong_in_one_line(tmp_path):
    for name, reason in damaged(tmp_path).items():
        path = tmp_path / name
        with pytest.raises(UserError) as error:
            load_checkpoint(path)
        assert str(error.value) == (
            f"checkpoint {path} is corrupt or unreadable ({reason}); use the other checkpoint "
            "(last.pt / best.pt) or train again"
        )


def test_a_checkpoint_that_would_run_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    cases = {"code.pt": "posix.system", "nested.pt": "posix.system"}
    torch.save({"model": RunsCode(marker)}, tmp_path / "code.pt")
    torch.save({"progress": {"epoch": 1}, "rng": [RunsCode(marker)]}, tmp_path / "nested.pt")
    for name, code in cases.items():
        path = tmp_path / name
        with pytest.raises(UserError) as error:
            load_checkpoint(path)
        assert str(error.value) == (
            f"checkpoint {path} holds a Python object ({code}) that could run code when "
            "loaded, so mtlrun refuses it; use a checkpoint written by mtlrun, or train again"
        )
    assert not marker.exists()


def test_through_the_cli_a_bad_checkpoint_is_one_line_without_torchs_advice(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.resolved.yaml").write_text(
        compose_to_yaml([*TINY, "~task@tasks.reconstruction", "+task@tasks.class=classification"])
    )
    marker = tmp_path / "ran"
    torch.save({"model": RunsCode(marker)}, run / "checkpoints" / "best.pt")
    result = run_cli(tmp_path, "eval", str(run))
    assert result.returncode == 2
    best = run / "checkpoints" / "best.pt"
    assert result.stderr == (
        f"mtlrun: error: checkpoint {best} holds a Python object (posix.system) that could run "
        "code when loaded, so mtlrun refuses it; use a checkpoint written by mtlrun, or train "
        "again\n"
    )
    assert not marker.exists() and not (run / "eval").exists()
    (run / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    result = run_cli(tmp_path, "sample", str(run), "n=4")
    assert result.returncode == 2
    assert result.stderr == (
        f"mtlrun: error: checkpoint {best} is corrupt or unreadable (not a PyTorch checkpoint); "
        "use the other checkpoint (last.pt / best.pt) or train again\n"
    )
    assert "weights_only" not in result.stderr


def compose_to_yaml(overrides: list[str]) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(compose_config(overrides))


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_checkpoints_and_json_files_get_the_users_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_json(tmp_path / "summary.json", {"a": 1})
        save_checkpoint(tmp_path / "last.pt", {"w": torch.ones(2)})
        (tmp_path / "train.log").write_text("")  # as any other file of the run folder
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["summary.json", "last.pt", "train.log"], 0o666 & ~umask)
