"""Plug-ins, as a user meets them: the example package (examples/mtlrun-plugin-example)
installed for real, so mtlrun finds it through its `mtlrun.plugins` entry point, and used by
`mtlrun train` (one run, and a joblib sweep whose workers are new processes), `reproduce`,
`eval` and `report`; a plain module named with `plugins=[...]`, which rebuilding a run imports
only when the user allows it; and the example's RLW weighting and hinge task on known numbers."""

import copy
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "mtlrun-plugin-example"
PACKAGE = "mtlrun_plugin_example"

# A few hundred examples, one epoch: every run takes seconds.
SMALL = [
    "dataset.n_train=400",
    "dataset.n_test=200",
    "dataset.val_size=100",
    "device=cpu",
    "trainer.epochs=1",
    "trainer.progress=false",
]

LAB_PARTS = '''"""A lab's own backbone, in a plain module (no package, no entry point)."""
import math
from dataclasses import dataclass

from torch import nn

from mtlrun import register
from mtlrun.backbones import Backbone
from mtlrun.backbones.base import FeatureLatent


@dataclass
class LabTinyConfig:
    name: str
    width: int = 16


@register.backbone("lab_tiny", schema=LabTinyConfig)
def lab_tiny(cfg, info):
    inputs = math.prod(info.input_shape)
    stem = nn.Sequential(nn.Flatten(), nn.Linear(inputs, cfg.width), nn.ReLU())
    return Backbone(
        info.input_shape,
        [stem],
        FeatureLatent(),
        cfg.width,
        lambda: nn.Sequential(nn.Linear(cfg.width, inputs), nn.Unflatten(1, info.input_shape)),
    )
'''


def mtlrun(cwd: Path, pythonpath: list[Path], *args: str) -> subprocess.CompletedProcess:
    """`mtlrun ARGS` in a new process whose PYTHONPATH is `pythonpath` then the repository (so
    importlib.metadata sees what is installed there); no plug-in named in the environment."""
    env = {key: value for key, value in os.environ.items() if key != "MTLRUN_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join(str(path) for path in [*pythonpath, REPO])
    # Models of a few thousand weights: one thread each, rather than a pool per process that
    # waits on the others' (a joblib sweep runs two at once).
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(
        [sys.executable, "-m", "mtlrun", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def last_line(result: subprocess.CompletedProcess) -> Path:
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed with pip (offline) into a folder of its own: a wheel built from
    its pyproject.toml, with the entry point and the configs/ it ships."""
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--no-cache-dir",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / PACKAGE / "configs" / "experiment" / "plugin_example.yaml").is_file()
    return target


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plugins")


@pytest.fixture(scope="module")
def run(site: Path, work: Path) -> Path:
    """One run of the example's experiment, bit-for-bit repeatable (deterministic, CPU)."""
    result = mtlrun(
        work, [site], "train", "+experiment=plugin_example", *SMALL, "trainer.deterministic=true"
    )
    return last_line(result)


@pytest.fixture(scope="module")
def sweep(site: Path, work: Path) -> Path:
    """A joblib sweep of the experiment with hard sharing and its single-task baseline."""
    result = mtlrun(
        work,
        [site],
        "train",
        "+experiment=plugin_example",
        *SMALL,
        "sharing=hard,single_task",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "-m",  # after the overrides: the plug-in's search path must not land behind it
    )
    return last_line(result)


def test_a_run_of_the_example_records_the_plugin_and_its_task_directions(run):
    assert run.name.endswith("_plugin_example")
    meta = read_json(run / "meta.json")
    assert meta["status"] == "completed"
    assert meta["plugins"] == {PACKAGE: "0.1.0"}
    summary = read_json(run / "summary.json")
    assert summary["directions"]["test/cluster/error"] == "min"
    assert summary["directions"]["test/cluster/margin"] == "max"
    assert summary["primary_metrics"] == {
        "cluster": "test/cluster/error",
        "radius": "test/radius/mse",
    }
    assert 0 <= summary["metrics"]["test/cluster/error"] <= 1
    assert "test/cluster/margin" in summary["metrics"]
    config = (run / "config.resolved.yaml").read_text()
    for name in ("gaussian_blobs", "residual_mlp", "hinge_classification", "random_weighting"):
        assert f"name: {name}" in config or f"type: {name}" in config, name
    # RLW logs the weights of the epoch's last step: positive, summing to 1.
    train = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    weights = [train["train/cluster/weight"], train["train/radius/weight"]]
    assert all(w > 0 for w in weights) and sum(weights) == pytest.approx(1)


def test_reproduce_reruns_the_plugin_run_bit_for_bit(run, site, work):
    result = mtlrun(work, [site], "reproduce", str(run))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reproduced (bit for bit)" in result.stdout
    again = last_line(result)
    assert read_json(again / "meta.json")["plugins"] == {PACKAGE: "0.1.0"}


def test_eval_rebuilds_the_plugin_run_without_being_told(run, site, work):
    result = mtlrun(work, [site], "eval", str(run))
    assert last_line(result) == run / "eval" / "best.json"
    metrics = read_json(run / "eval" / "best.json")["metrics"]
    summary = read_json(run / "summary.json")
    for key in ("test/cluster/error", "test/cluster/margin", "val/cluster/error"):
        assert key in metrics
    # The best checkpoint of a one-epoch run is its final model.
    assert metrics["test/cluster/error"] == pytest.approx(summary["metrics"]["test/cluster/error"])


@pytest.mark.slow
def test_joblib_workers_import_the_plugin_and_every_job_completes(sweep):
    jobs = read_json(sweep / "sweep.json")["jobs"]
    assert [(job["status"], job["overrides"][-1]) for job in jobs] == [
        ("completed", "sharing=hard"),
        ("completed", "sharing=single_task"),
    ]
    for job in jobs:
        assert read_json(sweep / job["run_dir"] / "meta.json")["plugins"] == {PACKAGE: "0.1.0"}


def expected_delta_m(mtl: dict, stl: dict, directions: dict, keys: list[str]) -> float:
    """Δm by its definition: mean over tasks of (−1)^d (M_mtl − M_stl) / |M_stl| × 100."""
    gains = [
        (-1 if directions[key] == "min" else 1) * (mtl[key] - stl[key]) / abs(stl[key]) * 100
        for key in keys
    ]
    return sum(gains) / len(gains)


@pytest.mark.slow
def test_report_computes_delta_m_with_the_plugin_task_direction(sweep, site, work):
    result = mtlrun(work, [site], "report", str(sweep))
    assert result.returncode == 0, result.stderr
    rows = read_json(sweep / "report.json")["rows"]
    hard, single_task = rows
    assert (hard["sharing"], single_task["sharing"]) == ("hard", "single_task")
    assert single_task["is_baseline"] and hard["baseline"] == single_task["config"]
    assert hard["primary_metrics"] == {
        "cluster": "test/cluster/error",
        "radius": "test/radius/mse",
    }
    assert hard["delta_m"]["paired"] is True, hard["delta_m_reason"]
    mtl, stl = (read_json(sweep / str(job) / "summary.json") for job in (0, 1))
    keys = ["test/cluster/error", "test/radius/mse"]
    expected = expected_delta_m(mtl["metrics"], stl["metrics"], mtl["directions"], keys)
    assert hard["delta_m"]["mean"] == pytest.approx(expected)


@pytest.mark.slow
def test_a_lower_error_than_the_baseline_counts_as_a_gain(sweep, tmp_path):
    """The sign, on numbers chosen for it: the multi-task run's error half the baseline's and
    the same mse, so Δm = (50 % + 0 %) / 2 = +25 %, read from the plug-in's `min`."""
    from mtlrun.report.build import write_report

    for job in ("0", "1"):
        shutil.copytree(sweep / job, tmp_path / job)
    baseline = read_json(tmp_path / "1" / "summary.json")["metrics"]
    path = tmp_path / "0" / "summary.json"
    summary = read_json(path)
    summary["metrics"]["test/cluster/error"] = baseline["test/cluster/error"] / 2
    summary["metrics"]["test/radius/mse"] = baseline["test/radius/mse"]
    path.write_text(json.dumps(summary))
    write_report(tmp_path, [])
    hard = read_json(tmp_path / "report.json")["rows"][0]
    assert hard["delta_m"]["mean"] == pytest.approx(25.0)


def test_a_plain_module_trains_and_rebuilding_its_run_needs_permission(tmp_path):
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "lab_parts.py").write_text(LAB_PARTS)
    trained = mtlrun(
        tmp_path,
        [lab],
        "train",
        "dataset=synthetic_regression",
        "dataset.num_tasks=2",
        "dataset.low_data_examples=20",
        "~task@tasks.reconstruction",
        "+task@tasks.y0=regression",
        "+task@tasks.y1=regression",
        "plugins=[lab_parts]",
        "backbone=lab_tiny",
        *SMALL,
    )
    run = last_line(trained)
    assert read_json(run / "meta.json")["plugins"] == {"lab_parts": "unknown"}
    assert "test/y0/mse" in read_json(run / "summary.json")["metrics"]
    assert "name: lab_tiny" in (run / "config.resolved.yaml").read_text()

    # Importable, but not allowed: a run folder is data, not code to run.
    refused = mtlrun(tmp_path, [lab], "eval", str(run))
    assert refused.returncode == 2
    assert refused.stdout == ""
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "'lab_parts'" in lines[0] and "--plugins lab_parts" in lines[0]
    assert not (run / "eval").exists()

    allowed = mtlrun(tmp_path, [lab], "eval", str(run), "--plugins", "lab_parts")
    assert last_line(allowed) == run / "eval" / "best.json"
    assert "test/y1/mse" in read_json(run / "eval" / "best.json")["metrics"]


@pytest.fixture(scope="module")
def example():
    """The example's package imported into this process for unit tests, its registrations
    undone afterwards, so the other tests' registries (and lists of choices) stay mtlrun's."""
    from hydra.core.config_store import ConfigStore

    from mtlrun.parts import BACKBONES, DATASETS, TASKS, WEIGHTINGS

    store = ConfigStore.instance()
    with pytest.MonkeyPatch.context() as patch:
        for registry in (DATASETS, BACKBONES, TASKS, WEIGHTINGS):
            patch.setattr(registry, "_entries", dict(registry._entries))
        patch.setattr(store, "repo", copy.deepcopy(store.repo))
        patch.syspath_prepend(str(EXAMPLE))
        try:
            yield importlib.import_module(PACKAGE)
        finally:
            for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
                del sys.modules[name]


def test_random_weighting_descends_a_softmax_normal_weighted_sum(example):
    from mtlrun.schemas.weighting import WeightingConfig

    rlw = example.random_weighting
    tasks = [SimpleNamespace(name=name) for name in ("a", "b", "c")]
    weighting = rlw.RandomLossWeighting(WeightingConfig("random_weighting"), tasks, model=None)
    # A toy problem: three quadratic losses of one parameter vector.
    generator = torch.Generator().manual_seed(0)
    theta = torch.randn(4, generator=generator).requires_grad_()
    targets = torch.randn((3, 4), generator=generator)
    scales = torch.rand((3, 4), generator=generator) + 0.5

    def losses() -> list[torch.Tensor]:
        return [(scales[t] * (theta - targets[t])).pow(2).sum() for t in range(3)]

    torch.manual_seed(123)
    drawn = [torch.softmax(torch.randn(3), dim=0) for _ in range(3)]
    after = torch.randn(5)
    torch.manual_seed(123)
    for step, expected in enumerate(drawn):
        task_losses = losses()
        separate = [torch.autograd.grad(loss, theta, retain_graph=True)[0] for loss in task_losses]
        auxiliary = theta.pow(2).sum() if step == 2 else None  # the model's own penalty
        theta.grad = None
        total = weighting.backward(task_losses, SimpleNamespace(auxiliary_loss=auxiliary))
        weights = weighting.last_weights
        assert torch.equal(weights, expected)
        assert weights.sum().item() == pytest.approx(1)
        assert (weights > 0).all()
        wanted = sum(w * g for w, g in zip(weights, separate, strict=True))
        penalty = sum(w * loss for w, loss in zip(weights, task_losses, strict=True))
        if auxiliary is not None:
            wanted = wanted + 2 * theta.detach()
            penalty = penalty + auxiliary
        torch.testing.assert_close(theta.grad, wanted)
        torch.testing.assert_close(total, penalty.detach())
    # The draws came from torch's global generator (which checkpoints save), nothing else.
    assert torch.equal(torch.randn(5), after)
    assert not torch.equal(drawn[0], drawn[1])
    last = dict(zip(("a/weight", "b/weight", "c/weight"), drawn[-1].tolist(), strict=True))
    assert weighting.logged() == pytest.approx(last)
    assert "last_weights" in weighting.state_dict()


def test_hinge_task_loss_error_and_margin_by_hand(example):
    from mtlrun.data import Batch

    hinge = example.hinge
    task = hinge.HingeClassification(
        hinge.HingeClassificationConfig(type="hinge_classification", target="cluster"), "blob"
    )
    assert task.primary_metric == "error"
    assert task.directions == {"loss": "min", "error": "min", "margin": "max"}
    scores = torch.tensor(
        [
            [2.0, 0.5, -1.0],  # y=0: margin 2 − 0.5 = 1.5, loss 0, right
            [0.0, 0.3, 0.2],  # y=2: margin 0.2 − 0.3 = −0.1, loss 1.1, wrong
            [1.0, 1.0, 0.0],  # y=1: a tie, margin 0, loss 1, wrong
            [-1.0, 3.0, 0.5],  # y=0: margin −1 − 3 = −4, loss 5, wrong
        ]
    )
    batch = Batch(torch.zeros(4, 2), {"cluster": torch.tensor([0, 2, 1, 0])})
    loss = task.per_example_loss(scores, None, batch)
    torch.testing.assert_close(loss, torch.tensor([0.0, 1.1, 1.0, 5.0]))
    assert task.loss(scores, None, batch).item() == pytest.approx(7.1 / 4)
    sums = {key: value.item() for key, value in task.metric_sums(scores, None, batch).items()}
    assert sums == pytest.approx({"loss": 7.1, "error": 3.0, "margin": -2.6})


def test_gaussian_blobs_refuses_impossible_values_in_one_line(example):
    from mtlrun.errors import ConfigError
    from mtlrun.parts import DATASETS

    for node, message in [
        ({"num_clusters": 1}, "dataset.num_clusters=1 must be at least 2"),
        ({"n_train": 100, "val_size": 100}, "dataset.val_size=100 must be at least 0 and below"),
        ({"spread": 0.0}, "dataset.spread=0.0 must be above 0"),
    ]:
        with pytest.raises(ConfigError, match=message):
            DATASETS.config("gaussian_blobs", {"name": "gaussian_blobs", **node}, "dataset")
    node = {"name": "gaussian_blobs", "n_train": 50, "n_test": 10, "val_size": 10}
    data, again = (DATASETS.build("gaussian_blobs", node, "dataset") for _ in range(2))
    assert torch.equal(data.train.inputs, again.train.inputs)  # seeded
    torch.testing.assert_close(data.train.targets["radius"], data.train.inputs.norm(dim=1))
    assert set(data.train.targets["cluster"].tolist()) <= set(range(4))
