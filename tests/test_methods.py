"""The method catalogue (`+method=NAME`: a sharing strategy and a weighting together) and the
comparison one sweep over it gives: one row per method with mean ± std over seeds, Δm, rank,
mean rank and time per epoch."""

import json

import pytest

from mtlrun.compose import validate
from mtlrun.config import config_dir
from mtlrun.parts import SHARING, WEIGHTINGS
from tests.conftest import compose_config
from tests.helpers import run_cli

METHODS = sorted(path.stem for path in (config_dir() / "method").glob("*.yaml"))


def chosen(method: str) -> tuple[str, str]:
    """The sharing and weighting a method's name says it sets."""
    if method == "single_task":
        return "single_task", "equal"
    if method == "scalarization":
        return "hard", "scalarization"
    sharing, _, weighting = method.partition("_")
    if method.endswith("_equal") and sharing != "hard":
        sharing, weighting = method.removesuffix("_equal"), "equal"
    return sharing, weighting


def mtlruns_own(registry) -> set[str]:  # noqa: ANN001
    """The options mtlrun ships (other tests register plug-ins' in this process too)."""
    return {name for name in registry.names if registry.get(name).__module__.startswith("mtlrun.")}


def test_the_catalogue_has_every_weighting_on_hard_sharing_and_every_strategy():
    # scalarization is the front, a sweep of its own: `+method=scalarization`.
    weightings = mtlruns_own(WEIGHTINGS) - {"fixed", "scalarization"}
    assert {f"hard_{name}" for name in weightings} <= set(METHODS)
    strategies = {chosen(method)[0] for method in METHODS}
    # Not in it: the autoencoder strategies, and grouped, whose groups depend on the tasks.
    assert mtlruns_own(SHARING) - {"concat", "two_stage", "grouped"} <= strategies


@pytest.mark.parametrize("method", METHODS)
def test_a_method_sets_its_sharing_and_weighting_over_an_experiment(method):
    cfg = compose_config(["+experiment=multimnist", f"+method={method}"])
    assert (cfg.sharing.name, cfg.weighting.name) == chosen(method)
    assert cfg.backbone.name == "cnn" and list(cfg.tasks) == ["left_digit", "right_digit"]
    validate(cfg)


def test_a_sweep_over_methods_reports_one_row_per_method(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(
        tmp_path,
        "train",
        "-m",
        "dataset=synthetic",
        "dataset.target_name=digit",
        "dataset.n_train=512",
        "dataset.val_size=128",
        "dataset.n_test=128",
        "backbone=mlp",
        "backbone.hidden_dims=[32]",
        "~task@tasks.reconstruction",
        "+task@tasks.digit=classification",
        "+task@tasks.parity=classification",
        "+method=glob([single_task,hard_equal,hard_pcgrad])",
        "seed=0,1",
        "trainer.epochs=2",
        "device=cpu",
        f"hydra.sweep.dir={sweep}",
        check=True,
    )
    run_cli(tmp_path, "report", str(sweep), check=True)
    report = json.loads((sweep / "report.json").read_text())
    rows = {row["overrides"]["method"]: row for row in report["rows"]}
    assert set(rows) == {"single_task", "hard_equal", "hard_pcgrad"}
    assert rows["single_task"]["is_baseline"] and rows["single_task"]["rank"] is None
    for method in ("hard_equal", "hard_pcgrad"):
        row = rows[method]
        assert row["seeds"] == [0, 1] and row["delta_m"]["n"] == 2
        assert row["rank"] in (1, 2) and 1 <= row["mean_rank"] <= 3
        assert row["seconds_per_epoch"]["mean"] > 0
        assert row["metrics"]["test/digit/acc"]["n"] == 2
    better = max(("hard_equal", "hard_pcgrad"), key=lambda m: rows[m]["delta_m"]["mean"])
    assert rows[better]["rank"] == 1
    lines = (sweep / "report.md").read_text().splitlines()
    header = next(line for line in lines if "| rank |" in line)
    assert "| method |" in header and "| Δm (%) |" in header and "| s / epoch |" in header
