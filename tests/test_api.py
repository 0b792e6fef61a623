"""The Python API: mtlrun.train, mtlrun.load_run and mtlrun.register, in this process."""

import json
import shlex
import sys
import textwrap

import pytest
import torch

import mtlrun
from mtlrun.errors import ConfigError
from tests.conftest import TINY
from tests.helpers import run_cli

# The README's plug-in example, word for word but for its name (registries are per process).
PLUGIN = textwrap.dedent(
    '''
    from dataclasses import dataclass
    from mtlrun import register
    from mtlrun.weighting import Weighting
    from mtlrun.weighting.base import WeightingConfig, total_loss

    @dataclass
    class HalfConfig(WeightingConfig):
        factor: float = 0.5

    @register.weighting("api_test_half", schema=HalfConfig)
    class Half(Weighting):
        """Every task at `factor`."""
        def __init__(self, config, tasks, model):
            super().__init__(tasks, model)
            self.factor = config.factor
        def backward(self, losses, output, shard):
            total = total_loss([self.factor] * len(losses), losses, output)
            total.backward()
            return total.detach()
    '''
)


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "api_test_lab.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "api_test_lab"
    sys.modules.pop("api_test_lab", None)


def test_train_runs_a_plugin_part_into_a_run_folder_and_load_run_gives_its_model(
    tmp_path, plugin_module
):
    overrides = [
        *TINY,
        "+task@tasks.class=classification",
        "backbone=dense_ae",
        f"plugins=[{plugin_module}]",
        "weighting=api_test_half",
        "weighting.factor=0.25",
    ]
    run = mtlrun.train(overrides, output_dir=tmp_path / "out")

    assert run.path.parent.parent == tmp_path / "out" / "runs"
    assert run.path.name.endswith("_default")
    for name in ("config.resolved.yaml", ".hydra/config.yaml", "metrics.jsonl", "summary.json"):
        assert (run.path / name).is_file(), name
    assert set(run.metrics) >= {"test/loss", "test/class/acc", "test/reconstruction/bce"}
    assert run.metrics == json.loads((run.path / "summary.json").read_text())["metrics"]
    meta = json.loads((run.path / "meta.json").read_text())
    assert meta["plugins"] == {plugin_module: "unknown"}  # a plain module has no version
    assert meta["command"] == shlex.join(["mtlrun", "train", *overrides])
    assert meta["status"] == "completed"
    # The train loss the loop logs is the weighting's total: 0.25 × the sum of task losses.
    train = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    last = [record for record in train if record["split"] == "train"][-1]
    task_sum = last["train/reconstruction/loss"] + last["train/class/loss"]
    assert last["train/loss"] == pytest.approx(0.25 * task_sum, rel=1e-5)

    loaded = mtlrun.load_run(run.path, device="cpu")
    assert loaded.checkpoint == "best"
    assert not loaded.model.training
    assert [task.name for task in loaded.tasks] == ["reconstruction", "class"]
    assert loaded.config.weighting.factor == 0.25
    best = torch.load(run.path / "checkpoints" / "best.pt", weights_only=True)["model"]
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, best[name]), name
    assert len(loaded.data.test) == 128


def test_train_raises_the_one_line_config_error():
    with pytest.raises(ConfigError) as error:
        mtlrun.train([*TINY, "optim.lr=0"])
    assert str(error.value) == "optim.lr=0.0 must be above 0"

    with pytest.raises(ConfigError) as error:
        mtlrun.train([*TINY, "weighting=nope"])
    assert "weighting" in str(error.value) and "\n" not in str(error.value)

    with pytest.raises(ConfigError) as error:  # refused by the schema as the config composes
        mtlrun.train([*TINY, "backbone.latent_dim=abc"])
    assert str(error.value) == (
        "backbone.latent_dim: Value 'abc' of type 'str' could not be converted to Integer"
    )


def test_a_plugin_that_is_not_importable_is_one_line(tmp_path):
    from mtlrun.errors import UserError

    with pytest.raises(UserError) as error:
        mtlrun.train([*TINY, "plugins=[no_such_lab.mtl]"])
    assert str(error.value) == (
        "plug-in module 'no_such_lab.mtl' is not importable; install its package (pip install) "
        "or add its folder to PYTHONPATH"
    )


def test_the_registry_is_the_list_of_choices():
    from mtlrun.errors import PluginError, listed
    from mtlrun.parts import WEIGHTINGS

    with pytest.raises(ConfigError) as error:
        WEIGHTINGS.get("nope")
    assert str(error.value) == (
        f"weighting='nope' is not known; choose one of: "
        f"{listed(WEIGHTINGS.names, 'see `mtlrun train --help`')}"
    )
    with pytest.raises(PluginError, match="'equal' is one of mtlrun's own"):
        mtlrun.register.weighting("equal", schema=WEIGHTINGS.schema("equal"))(object)


def test_the_api_refuses_what_is_not_a_list_of_overrides_and_command_line_flags(tmp_path):
    from mtlrun.errors import UserError

    for wrong in ("backbone=vae", None, {"backbone": "vae"}, ["seed=0", 3]):
        with pytest.raises(UserError) as error:
            mtlrun.train(wrong, output_dir=tmp_path)  # type: ignore[arg-type]
        assert str(error.value) == (
            f"overrides={wrong!r} must be a list of strings, e.g. ['+experiment=vae_mnist']"
        )
    for sweep in (["-m", "seed=0,1"], ["--multirun"]):
        with pytest.raises(UserError, match="^mtlrun.train runs one config; sweep with"):
            mtlrun.train(sweep, output_dir=tmp_path)
    with pytest.raises(UserError) as error:
        mtlrun.train(["--cfg", "job"], output_dir=tmp_path)
    assert str(error.value) == (
        "--cfg is a flag of the command line; mtlrun.train takes overrides (key=value) and "
        "config_dir= for a folder of your own configs"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_output_dir_that_cannot_be_written_is_one_line_before_training(tmp_path):
    from mtlrun.errors import UserError

    (tmp_path / "a_file").write_text("kept\n")
    for output_dir in (tmp_path / "a_file", tmp_path / "a_file" / "runs"):
        with pytest.raises(UserError) as error:
            mtlrun.train([*TINY, "trainer.epochs=1"], output_dir=output_dir)
        line = f"output_dir={output_dir} is a file, or inside one; pass a folder"
        assert str(error.value) == line
    assert (tmp_path / "a_file").read_text() == "kept\n"


def train_tiny(tmp_path, *overrides: str):
    return mtlrun.train([*TINY, "trainer.epochs=1", *overrides], output_dir=tmp_path / "out")


def test_load_run_refuses_a_missing_best_pt_instead_of_loading_last_pt(tmp_path, capsys):
    """A run with a validation split keeps best.pt from its first validation on: without it,
    the last weights are not the model the run selected, so they are loaded only when asked."""
    from mtlrun.errors import UserError

    run = train_tiny(tmp_path)
    (run.path / "checkpoints" / "best.pt").unlink()
    with pytest.raises(UserError) as error:
        mtlrun.load_run(run.path, device="cpu")
    assert str(error.value) == (
        f"{run.path} has no checkpoints/best.pt, which a run keeps from its first validation "
        "on: it stopped before one (resume it), or the file was removed; pass checkpoint=last "
        "for its last weights"
    )
    for command in ("eval", "sample"):
        result = run_cli(tmp_path, command, str(run.path))
        assert result.returncode == 2, result.stderr
        assert result.stderr == f"mtlrun: error: {error.value}\n"
    assert not (run.path / "eval").exists() and not (run.path / "samples").exists()
    last = mtlrun.load_run(run.path, "last", device="cpu")
    assert last.checkpoint == "last"
    weights = torch.load(run.path / "checkpoints" / "last.pt", weights_only=True)["model"]
    for name, tensor in last.model.state_dict().items():
        assert torch.equal(tensor, weights[name]), name


def test_load_run_of_a_run_without_validation_says_it_loads_last_pt(tmp_path, capsys):
    run = train_tiny(tmp_path, "dataset.val_size=0")
    assert not (run.path / "checkpoints" / "best.pt").exists()
    capsys.readouterr()
    loaded = mtlrun.load_run(run.path, device="cpu")
    assert loaded.checkpoint == "last"
    assert capsys.readouterr().err == (
        f"mtlrun: warning: {run.path} has no validation split (dataset.val_size=0), so no "
        "best.pt: using last.pt, its final weights\n"
    )
