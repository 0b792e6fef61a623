"""A plug-in author's mistakes, as real broken modules mtlrun imports: each ends in one line
naming the plug-in, the part and what was expected, exit status 2, no traceback on the
terminal, and the traceback in the run's error.txt where a run had started. An installed entry
point whose module is broken warns and leaves the runs that do not use it alone."""

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mtlrun.plugins as plugins
from tests.helpers import mtlrun_command, run_cli

REPO = Path(__file__).resolve().parent.parent

# A run of a second on vectors: two regression tasks on a small MLP.
TINY = [
    "dataset=synthetic_regression",
    "dataset.num_tasks=2",
    "dataset.n_train=64",
    "dataset.n_test=32",
    "dataset.val_size=16",
    "dataset.input_dim=4",
    "dataset.low_data_examples=8",
    "~task@tasks.reconstruction",
    "+task@tasks.y0=regression",
    "+task@tasks.y1=regression",
    "backbone=mlp",  # 4 inputs, 256 and 128 units
    "device=cpu",
    "trainer.epochs=1",
    "trainer.batch_size=16",
    "trainer.progress=false",
]

IMPORTS = """
from dataclasses import dataclass

import torch
from torch import nn

from mtlrun import register
from mtlrun.schemas.weighting import WeightingConfig
from mtlrun.weighting import Weighting, total_loss
"""

# A correct weighting to break one piece at a time.
HALF = """
@register.weighting("half", schema=WeightingConfig)
class Half(Weighting):
    def __init__(self, config, tasks, model):
        super().__init__(tasks, model)

    def backward(self, losses, output, shard):
        total = total_loss([0.5] * len(losses), losses, output)
        total.backward()
        return total.detach()
"""


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A folder on sys.path to write plug-in modules into (`lab(name, source)`); whatever they
    register is undone afterwards, so other tests see mtlrun's own registries."""
    from hydra.core.config_store import ConfigStore

    from mtlrun.parts import BACKBONES, DATASETS, LOGGERS, OPTIMIZERS, SHARING, TASKS, WEIGHTINGS

    folder = tmp_path / "lab"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    registries = (DATASETS, BACKBONES, SHARING, TASKS, WEIGHTINGS, OPTIMIZERS, LOGGERS)
    before = {registry: set(registry._entries) for registry in registries}
    monkeypatch.setattr(plugins, "_loaded", dict(plugins._loaded))
    monkeypatch.setattr(plugins, "_broken", {})
    modules = set(sys.modules)

    def write(name: str, source: str) -> str:
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return name

    yield write
    for registry in registries:  # their entries, and their schemas as the groups' options
        for name in set(registry._entries) - before[registry]:
            del registry._entries[name]
            ConfigStore.instance().repo.get(registry.group, {}).pop(f"{name}.yaml", None)
    for name in set(sys.modules) - modules:
        if str(folder) in str(getattr(sys.modules[name], "__file__", "")):
            del sys.modules[name]


def one_line(result) -> str:
    """The command's one line on stderr, after checking that it is all there is."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mtlrun: error: ")
    return lines[0].removeprefix("mtlrun: error: ")


def no_run(tmp_path: Path) -> bool:
    return not list(tmp_path.glob("outputs/runs/*/*"))


def the_run(tmp_path: Path) -> Path:
    (run,) = tmp_path.glob("outputs/runs/*/*")
    return run


def train(tmp_path: Path, *args: str):
    return run_cli(tmp_path, "train", *TINY, *args)


# Faults of importing the plug-in.


def test_a_missing_dependency_is_blamed_on_the_dependency(tmp_path, lab):
    lab("lab_deps", "import lab_needs_this_package_xyz\n")
    line = one_line(train(tmp_path, "plugins=[lab_deps]"))
    assert line == (
        "plug-in lab_deps needs the package 'lab_needs_this_package_xyz', which is not "
        "installed: pip install lab_needs_this_package_xyz"
    )


def test_an_exception_at_import_names_the_plugin_and_the_line(tmp_path, lab):
    lab("lab_raises", "x = 1\nraise RuntimeError('no GPU found')\n")
    line = one_line(train(tmp_path, "plugins=[lab_raises]"))
    assert line.startswith(
        "plug-in lab_raises fails to import: RuntimeError: no GPU found (lab/lab_raises.py:2, "
        "in <module>)"
    )
    assert line.endswith("see its traceback with: python -c 'import lab_raises'")


def test_a_syntax_error_names_the_file_and_line(tmp_path, lab):
    lab("lab_syntax", "def broken(:\n    pass\n")
    line = one_line(train(tmp_path, "plugins=[lab_syntax]"))
    assert line.startswith("plug-in lab_syntax fails to import: SyntaxError: ")
    assert "(lab/lab_syntax.py:1)" in line


def test_a_name_registered_twice_names_both_plugins(tmp_path, lab):
    lab("lab_first", IMPORTS + HALF)
    lab("lab_second", IMPORTS + HALF)
    line = one_line(train(tmp_path, "plugins=[lab_first,lab_second]"))
    assert line == (
        "plug-in lab_second: weighting 'half' is registered twice (first by lab_first); rename one"
    )


def test_a_plugin_cannot_take_a_name_of_mtlruns_own(tmp_path, lab):
    lab("lab_shadow", IMPORTS + HALF.replace('"half"', '"pcgrad"'))
    line = one_line(train(tmp_path, "plugins=[lab_shadow]"))
    assert line == (
        "plug-in lab_shadow: weighting 'pcgrad' is one of mtlrun's own; register yours under "
        "another name"
    )


def test_a_schema_that_is_not_a_dataclass(tmp_path, lab):
    source = IMPORTS + HALF.replace("schema=WeightingConfig", "schema=HalfConfig")
    lab("lab_schema", "class HalfConfig:\n    name: str = 'half'\n" + source)
    line = one_line(train(tmp_path, "plugins=[lab_schema]"))
    assert line == (
        "plug-in lab_schema: weighting 'half': its schema 'HalfConfig' is not a dataclass; "
        "decorate it with @dataclasses.dataclass"
    )


# Builders that raise or return the wrong kind of object: found while building, before any
# run folder exists.


def test_a_dataset_builder_that_returns_the_wrong_kind(tmp_path, lab):
    lab(
        "lab_data",
        IMPORTS
        + """
@dataclass
class BlobsConfig:
    name: str

@register.dataset("blobs", schema=BlobsConfig)
def blobs(config):
    return {"train": torch.zeros(4, 2)}
""",
    )
    line = one_line(run_cli(tmp_path, "train", "plugins=[lab_data]", "dataset=blobs"))
    assert line == (
        "plug-in lab_data: dataset=blobs: a dataset is a mtlrun.data.registry.RawData; blobs "
        "returned dict"
    )
    assert no_run(tmp_path)


def test_a_backbone_builder_that_raises_names_the_part_and_its_line(tmp_path, lab):
    lab(
        "lab_backbone",
        IMPORTS
        + """
@dataclass
class TinyConfig:
    name: str
    width: int = 4

def width_of(config):
    return config.width // 0

@register.backbone("tiny", schema=TinyConfig)
def tiny(config, info):
    return nn.Linear(width_of(config), 1)
""",
    )
    line = one_line(train(tmp_path, "plugins=[lab_backbone]", "backbone=tiny"))
    source = (tmp_path / "lab" / "lab_backbone.py").read_text().splitlines()
    raised = source.index("    return config.width // 0") + 1
    assert line == (
        "plug-in lab_backbone: backbone=tiny raised ZeroDivisionError: integer division or "
        f"modulo by zero (lab/lab_backbone.py:{raised}, in width_of)"
    )
    assert no_run(tmp_path)


def test_a_task_that_is_not_a_task(tmp_path, lab):
    lab(
        "lab_task",
        IMPORTS
        + """
from mtlrun.schemas.task import TaskConfig

@register.task("score", schema=TaskConfig)
class Score:
    def __init__(self, config, name):
        self.name = name
""",
    )
    line = one_line(train(tmp_path, "plugins=[lab_task]", "+task@tasks.s=score"))
    assert line == (
        "plug-in lab_task: tasks.s.type=score: a task is a mtlrun.tasks.Task; Score is no "
        "subclass of it"
    )


def test_a_weighting_that_is_not_a_weighting(tmp_path, lab):
    source = HALF.replace("class Half(Weighting):", "class Half(nn.Module):")
    lab(
        "lab_kind", IMPORTS + source.replace("super().__init__(tasks, model)", "super().__init__()")
    )
    line = one_line(train(tmp_path, "plugins=[lab_kind]", "weighting=half"))
    assert line == (
        "plug-in lab_kind: weighting=half: a weighting is a mtlrun.weighting.Weighting; Half is "
        "no subclass of it"
    )
    assert no_run(tmp_path)


def test_a_weighting_with_the_wrong_constructor(tmp_path, lab):
    source = HALF.replace("(self, config, tasks, model)", "(self, tasks, model)")
    lab("lab_init", IMPORTS + source.replace("super().__init__(tasks, model)", "pass"))
    line = one_line(train(tmp_path, "plugins=[lab_init]", "weighting=half"))
    assert line.startswith(
        "plug-in lab_init: weighting=half: Half is called as (config, tasks, model), which its "
        "signature does not take ("
    )


def test_a_weighting_whose_backward_takes_other_arguments(tmp_path, lab):
    source = HALF.replace("(self, losses, output, shard)", "(self, losses)")
    lab("lab_signature", IMPORTS + source.replace("losses, output)", "losses, None)"))
    line = one_line(train(tmp_path, "plugins=[lab_signature]", "weighting=half"))
    assert line.startswith(
        "plug-in lab_signature: weighting=half: Half.backward is called as "
        "backward(losses, output, shard), which its signature does not take"
    )
    assert line.endswith("see mtlrun.weighting.Weighting.backward")
    assert no_run(tmp_path)


# Faults of the first training step and the first evaluation: the run has started, so it ends
# as failed, with the traceback in its error.txt.


def failed_run(tmp_path: Path, line: str) -> Path:
    run = the_run(tmp_path)
    assert line.endswith(f"; traceback in {run.resolve() / 'error.txt'}")
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "failed"
    assert meta["error"] == line.removeprefix("mtlrun: error: ")
    assert (run / "error.txt").read_text().startswith("Traceback (most recent call last)")
    return run


def test_a_backward_that_returns_nothing(tmp_path, lab):
    lab("lab_none", IMPORTS + HALF.replace("return total.detach()", "pass"))
    line = one_line(train(tmp_path, "plugins=[lab_none]", "weighting=half"))
    assert line.startswith(
        "plug-in lab_none: weighting=half: backward returned None; it must return the step's "
        "total loss, a scalar tensor (e.g. total.detach() after total.backward())"
    )
    failed_run(tmp_path, line)


def test_a_backward_that_produces_no_gradient(tmp_path, lab):
    lab("lab_nograd", IMPORTS + HALF.replace("total.backward()", "pass"))
    line = one_line(train(tmp_path, "plugins=[lab_nograd]", "weighting=half"))
    assert line.startswith(
        "plug-in lab_nograd: weighting=half: backward left no gradient on the model's "
        "parameters; it must call .backward() on the weighted loss"
    )
    failed_run(tmp_path, line)


def test_a_backward_that_raises_keeps_its_traceback_in_the_run(tmp_path, lab):
    lab("lab_step", IMPORTS + HALF.replace("total.backward()", "losses[5].backward()"))
    line = one_line(train(tmp_path, "plugins=[lab_step]", "weighting=half"))
    assert line.startswith(
        "plug-in lab_step: weighting=half raised IndexError: list index out of range "
        "(lab/lab_step.py:"
    )
    assert ", in backward)" in line
    run = failed_run(tmp_path, line)
    assert "losses[5].backward()" in (run / "error.txt").read_text()


@pytest.mark.parametrize(
    ("logged", "got"),
    [("[0.5]", "a list"), ("{'y0/weight': 'high'}", "'y0/weight': 'high' (str)")],
)
def test_a_weighting_that_logs_no_numbers_ends_at_the_end_of_the_epoch(tmp_path, lab, logged, got):
    source = HALF + f"    def logged(self):\n        return {logged}\n"
    lab("lab_logged", IMPORTS + source)
    line = one_line(train(tmp_path, "plugins=[lab_logged]", "weighting=half"))
    assert line.startswith(
        f"plug-in lab_logged: weighting=half: logged returned {got}; it must return a dict of "
        "'<task>/<name>' keys to numbers, e.g. {'y0/weight': 0.5}"
    )
    failed_run(tmp_path, line)


TASK = """
from mtlrun.schemas.task import RegressionConfig
from mtlrun.tasks.regression import Regression

@register.task("scored", schema=RegressionConfig)
class Scored(Regression):
    directions = {"loss": "min", "mse": "min"}

    def metric_sums(self, prediction, encoding, batch):
        sums = super().metric_sums(prediction, encoding, batch)
        return {**sums, "score": sums["loss"]}
"""


def test_a_metric_missing_from_the_directions_ends_at_the_first_evaluation(tmp_path, lab):
    lab("lab_metric", IMPORTS + TASK)
    line = one_line(train(tmp_path, "plugins=[lab_metric]", "tasks.y0.type=scored"))
    assert line.startswith(
        "plug-in lab_metric: tasks.y0: Scored reports the metric 'score', which "
        "Scored.directions does not list; add 'score': 'min' or 'max' (lower or higher is "
        "better)"
    )
    failed_run(tmp_path, line)


def test_a_primary_metric_missing_from_the_directions_is_found_before_training(tmp_path, lab):
    source = TASK.replace('"mse": "min"', '"rmse": "min"')
    lab("lab_primary", IMPORTS + source)
    line = one_line(train(tmp_path, "plugins=[lab_primary]", "tasks.y0.type=scored"))
    assert line == (
        "plug-in lab_primary: tasks.y0: Scored.primary_metric='mse' is not in "
        "Scored.directions (loss, rmse); add it there with 'min' or 'max'"
    )
    assert no_run(tmp_path)


# A run folder whose plug-in is not here.


def test_a_run_whose_plugin_is_not_installed_says_so(tmp_path):
    run = tmp_path / "their_run"
    run.mkdir()
    (run / "config.resolved.yaml").write_text("name: theirs\nplugins: [lab_gone.mtl]\n")
    line = one_line(run_cli(tmp_path, "eval", str(run)))
    assert line == (
        "this run used the plug-in module 'lab_gone.mtl', which is not installed here; install "
        "the package that provides it (an installed plug-in needs no --plugins), or put its "
        "folder on PYTHONPATH and add --plugins lab_gone.mtl"
    )


def test_a_run_whose_installed_plugin_is_skipped_says_so(tmp_path, monkeypatch):
    site = broken_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    run = tmp_path / "their_run"
    run.mkdir()
    (run / "config.resolved.yaml").write_text("name: theirs\nplugins: [broken_lab]\n")
    result = run_cli(tmp_path, "eval", str(run), env={"MTLRUN_SKIP_PLUGINS": "broken_lab"})
    assert one_line(result) == (
        "this run used the plug-in broken_lab, which MTLRUN_SKIP_PLUGINS leaves out; take it "
        "out of MTLRUN_SKIP_PLUGINS to rebuild the run"
    )


# An installed plug-in whose module is broken.


def broken_distribution(tmp_path: Path) -> Path:
    """A folder for sys.path holding an installed distribution, `broken-lab`, as pip leaves
    one (a .dist-info with its entry point), whose module needs a package that is not there."""
    site = tmp_path / "site"
    (site / "broken_lab").mkdir(parents=True)
    (site / "broken_lab" / "__init__.py").write_text("import lab_needs_this_package_xyz\n")
    info = site / "broken_lab-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-lab\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[mtlrun.plugins]\nbroken = broken_lab\n")
    return site


WARNING = (
    "mtlrun: warning: plug-in broken_lab needs the package 'lab_needs_this_package_xyz', which "
    "is not installed: pip install lab_needs_this_package_xyz; its parts are left out: "
    "uninstall it (pip uninstall broken-lab) or set MTLRUN_SKIP_PLUGINS=broken_lab"
)


def test_a_broken_installed_plugin_warns_and_a_run_without_it_completes(tmp_path):
    site = broken_distribution(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    env.pop("MTLRUN_PLUGINS", None)
    result = subprocess.run(
        mtlrun_command("train", *TINY),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [WARNING]
    run = Path(result.stdout.strip().splitlines()[-1])
    assert json.loads((run / "meta.json").read_text())["status"] == "completed"


def test_the_warning_goes_once_the_plugin_is_left_out(tmp_path, monkeypatch, lab):
    monkeypatch.syspath_prepend(str(broken_distribution(tmp_path)))
    warned = run_cli(tmp_path, "train", "--cfg", "job")
    assert warned.returncode == 0
    assert warned.stderr.strip().splitlines() == [WARNING]
    plugins._broken.clear()
    left_out = run_cli(tmp_path, "train", "--cfg", "job", env={"MTLRUN_SKIP_PLUGINS": "broken_lab"})
    assert left_out.returncode == 0
    assert left_out.stderr == ""


def test_a_plugin_named_by_the_user_that_is_broken_stops_the_run(tmp_path, monkeypatch, lab):
    monkeypatch.syspath_prepend(str(broken_distribution(tmp_path)))
    line = one_line(train(tmp_path, "plugins=[broken_lab]"))
    assert line == (
        "plug-in broken_lab needs the package 'lab_needs_this_package_xyz', which is not "
        "installed: pip install lab_needs_this_package_xyz"
    )


# A plug-in's configs/method/ joins the method catalogue.


def test_a_plugins_methods_join_the_catalogue(tmp_path, lab):
    package = tmp_path / "lab" / "lab_methods"
    (package / "configs" / "method").mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(IMPORTS + HALF))
    (package / "configs" / "method" / "hard_half.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n"
        "  - override /sharing: hard\n"
        "  - override /weighting: half\n"
    )
    importlib.invalidate_caches()
    result = train(tmp_path, "plugins=[lab_methods]", "+method=glob(*_half)", "-m")
    assert result.returncode == 0, result.stderr
    (sweep,) = tmp_path.glob("outputs/multirun/*/*")
    (job,) = json.loads((sweep / "sweep.json").read_text())["jobs"]
    assert job["status"] == "completed"
    assert job["overrides"][-1] == "+method=hard_half"
    assert "name: half" in (sweep / job["run_dir"] / "config.resolved.yaml").read_text()
