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
        "backbone='vea' is not known; choose one of: cifar_resnet18, cnn, conv_vae, dense_ae, mlp, "
        "resnet50_dilated, segnet, vae",
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


# What a user types, what the shell hands mtlrun (split at the spaces), and the fix.
UNQUOTED_VALUES = {
    "name=héllo": (
        ["name=héllo"],
        "name=héllo: the value holds non-ASCII characters (é) that Hydra's override grammar "
        "takes only in quotes; quote it, \"name='héllo'\"",
    ),
    "a sweep over a name with an accent": (
        ["-m", "name=é,b"],
        "name=é,b: the value holds non-ASCII characters (é) that Hydra's override grammar "
        "takes only in quotes; quote it, \"name='é',b\"",
    ),
    "dataset.root=/data/run#1": (
        ["dataset.root=/data/run#1"],
        "dataset.root=/data/run#1: the value holds characters (#) that Hydra's override "
        "grammar takes only in quotes; quote it, \"dataset.root='/data/run#1'\"",
    ),
    "name=my first run": (
        ["name=my", "first", "run"],
        "'first' is not an override: if it belongs to the value of name=my, quote the value "
        "with its spaces, \"name='my first run'\"",
    ),
    "+task@tasks.größe=regression": (
        ["+task@tasks.größe=regression"],
        "+task@tasks.größe=regression: the key holds ß ö; a key is ASCII letters, digits, _ "
        "and -, its parts joined by dots (a group's by / and @)",
    ),
    "name=a[b": (
        ["name=a[b"],
        "cannot parse name=a[b (mismatched input '[' expecting <EOF>); if 'a[b' is text, "
        "quote it, \"name='a[b'\"",
    ),
}


@pytest.mark.parametrize("typed", list(UNQUOTED_VALUES))
def test_a_value_the_grammar_takes_only_in_quotes_gets_the_quoted_override(typed, tmp_path):
    arguments, line = UNQUOTED_VALUES[typed]
    for flags in ([], ["--cfg", "job"]):
        if "-m" in arguments and flags:
            continue
        result = run_cli(tmp_path, "train", *TINY, *arguments, *flags)
        assert result.returncode == 2, result.stderr
        assert result.stderr == f"mtlrun: error: {line}\n"
    assert not (tmp_path / "outputs").exists()
    if "-m" not in arguments:
        with pytest.raises(mtlrun.UserError) as error:
            mtlrun.train([*TINY, *arguments], output_dir=tmp_path / "api")
        assert str(error.value) == line


def test_the_quoted_override_is_the_fix(tmp_path):
    result = run_cli(tmp_path, "train", *TINY, "name='héllo wörld'", "--cfg", "job")
    assert result.returncode == 0, result.stderr
    assert "name: héllo wörld\n" in result.stdout


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


def test_a_method_glob_that_matches_nothing_is_refused_before_the_sweep(tmp_path):
    result = run_cli(tmp_path, "train", "-m", *TINY, "+method=glob(nomatch*)", "seed=0,1")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "mtlrun: error: +method=glob(nomatch*) matches no option of method; its options: "
        "cross_stitch_equal, hard_aligned_mtl, "
    )
    assert result.stderr.endswith(" more; see `mtlrun train --help`)\n")
    assert not (tmp_path / "outputs").exists()


def test_a_message_that_lists_choices_stays_one_short_line():
    """28 methods, 24 weightings: the list stops after about 200 characters, with how many are
    left and where all of them are."""
    from mtlrun.errors import listed
    from mtlrun.parts import WEIGHTINGS

    for overrides in (["+method=nope"], ["weighting=nope"]):
        with pytest.raises(mtlrun.UserError) as error:
            mtlrun.compose.compose(overrides)
        line = str(error.value)
        assert len(line) <= 300 and "\n" not in line, line
        assert line.endswith(" more; see `mtlrun train --help`)")
    names = WEIGHTINGS.names
    text = listed(names, "see `mtlrun train --help`")
    shown = text.split(", ... (")[0].split(", ")
    assert shown == names[: len(shown)] and len(", ".join(shown)) <= 200
    assert text.endswith(f"({len(names) - len(shown)} more; see `mtlrun train --help`)")
    assert listed(["a", "b"]) == "a, b" and listed([]) == "none"
