"""The one compose-and-validate path: a mistake found before the run starts is the same one line
from `mtlrun train` and from `mtlrun.train`, and leaves no folder behind; composing and checking
a config import no torch."""

import subprocess
import sys

import pytest

import mtlrun
from tests.conftest import TINY
from tests.helpers import run_cli

# Each found at a different stage: Hydra's composition, a schema's own check, the data.
MISTAKES = {
    "an unknown option": (
        ["backbone=vea"],
        "backbone='vea' is not known; choose one of: cnn, conv_vae, dense_ae, mlp, segnet, vae",
    ),
    "a misspelt key": (
        ["trainer.epoch=3"],
        "trainer.epoch is not a key of the config; did you mean trainer.epochs?",
    ),
    "a weighting's value": (
        ["weighting=dwa", "weighting.temperature=-1"],
        "weighting.temperature=-1.0 must be positive",
    ),
    "a sharing strategy's value": (
        ["sharing=soft", "sharing.task_relation=-1"],
        "sharing.task_relation=-1.0 must be at least 0 (0 turns it off)",
    ),
    "a label the dataset lacks": (
        ["+task@tasks.colour=classification"],
        "tasks.colour: dataset=synthetic has no label 'colour'; its labels are: class",
    ),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_a_mistake_is_the_same_line_from_the_cli_and_the_api_and_leaves_no_folder(
    name, tmp_path, monkeypatch
):
    overrides, line = MISTAKES[name]
    result = run_cli(tmp_path, "train", *TINY, *overrides)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"mtlrun: error: {line}\n"
    assert not (tmp_path / "outputs").exists()

    monkeypatch.chdir(tmp_path)
    with pytest.raises(mtlrun.UserError) as error:
        mtlrun.train([*TINY, *overrides], output_dir=tmp_path / "api")
    assert str(error.value) == line
    assert not (tmp_path / "api").exists()
    assert not (tmp_path / "outputs").exists()


def test_the_api_refuses_a_string_and_a_sweep_in_one_line():
    with pytest.raises(mtlrun.UserError, match="must be a list of strings"):
        mtlrun.train("backbone=vae")  # type: ignore[arg-type]
    with pytest.raises(mtlrun.UserError, match="runs one config; sweep with `mtlrun train -m"):
        mtlrun.train(["-m", "seed=0,1"])


def test_a_bad_value_in_any_job_of_a_sweep_is_refused_before_the_first_job(tmp_path):
    result = run_cli(tmp_path, "train", "-m", *TINY, "weighting=dwa", "seed=0,1.5")
    assert result.returncode == 2, result.stderr
    assert result.stderr == "mtlrun: error: seed=1.5 must be an integer, e.g. seed=0\n"
    assert not (tmp_path / "outputs").exists()


CHECKS_WITHOUT_TORCH = """
import sys
from mtlrun.compose import compose
from mtlrun.errors import UserError

compose(["+experiment=multimnist", "weighting=upgrad", "sharing=mtan"])
try:
    compose(["weighting=dwa", "weighting.temperature=-1"])
except UserError:
    pass
heavy = [name for name in ("torch", "torchvision", "mlflow", "wandb") if name in sys.modules]
print(",".join(heavy) or "none")
"""


def test_composing_and_checking_a_config_import_no_torch(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", CHECKS_WITHOUT_TORCH],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "none"


def test_cfg_job_and_help_run_without_torch(tmp_path):
    program = (
        "import sys, runpy\n"
        "sys.argv = ['mtlrun', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('mtlrun', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    for args in (["train", "+experiment=vae_mnist", "--cfg", "job"], ["train", "--help"], []):
        result = subprocess.run(
            [sys.executable, "-c", program, *args], cwd=tmp_path, capture_output=True, text=True
        )
        assert result.stderr.strip().splitlines()[-1] == "False", (args, result.stderr)
