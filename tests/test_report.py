"""`mtlrun report`: tables, seed means, Δm against exactly matched single-task baselines,
report.json, files that open from anywhere (checked in headless Chromium), one-line errors."""

import json
import re
import statistics
import sys
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from scipy import stats

from mtlrun import cli
from mtlrun.errors import UserError
from mtlrun.report.build import Report, write_report
from mtlrun.report.delta import CONVENTION
from mtlrun.report.document import Table, Text
from mtlrun.report.inference import holm, paired_p_value, t_interval, verdict
from mtlrun.terminal import format_value
from tests.chromium import CHROMIUM, load
from tests.fake_runs import make_run
from tests.helpers import run_cli

SINGLE_TASK = ["+experiment=vae_mnist", "sharing=single_task"]


def vae_metrics(nelbo: float, acc: float, *, kl: float = 25.0, nll: float = 0.3) -> dict:
    """Test metrics of a VAE with a digit classifier; kl, bce, nll and the losses must not
    enter Δm, so the tests give them values that would move it."""
    return {
        "test/loss": nelbo + nll,
        "test/reconstruction/loss": nelbo,
        "test/reconstruction/bce": nelbo - kl,
        "test/reconstruction/kl": kl,
        "test/reconstruction/nelbo": nelbo,
        "test/digit/loss": nll,
        "test/digit/nll": nll,
        "test/digit/acc": acc,
    }


@pytest.fixture
def pair(tmp_path: Path) -> Path:
    """One hard-sharing run and its single-task baseline, seed 0 each."""
    root = tmp_path / "pair"
    make_run(root / "0", SINGLE_TASK, vae_metrics(110, 0.80, kl=20, nll=0.25))
    make_run(root / "1", ["+experiment=vae_mnist"], vae_metrics(100, 0.90, kl=40, nll=0.20))
    return root


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Two seeds of a hard-sharing run and of its single-task baseline, one seed with another
    weighting, and a single-task run on another dataset that must not be used."""
    root = tmp_path / "sweep"
    make_run(root / "0", ["+experiment=vae_mnist", "seed=0"], vae_metrics(100, 0.90, kl=30))
    make_run(root / "1", ["+experiment=vae_mnist", "seed=1"], vae_metrics(110, 0.94, kl=32))
    for job, (seed, nelbo) in enumerate([(0, 98), (1, 102)], start=2):
        make_run(root / str(job), [*SINGLE_TASK, f"seed={seed}"], vae_metrics(nelbo, 0.80, kl=20))
    make_run(
        root / "4",
        ["+experiment=vae_mnist", "weighting=uncertainty", "seed=0"],
        vae_metrics(95, 0.78, nll=0.9),
    )
    make_run(
        root / "5",
        [*SINGLE_TASK, "dataset=fashion_mnist", "seed=0"],
        vae_metrics(300, 0.50),
    )
    return root


def tables(blocks: list) -> list[Table]:
    return [block for block in blocks if isinstance(block, Table)]


def notes(blocks: list) -> list[str]:
    return [block.text for block in blocks if isinstance(block, Text) and "undefined" in block.text]


def column(table: Table, name: str) -> list[str]:
    return [row[table.columns.index(name)] for row in table.rows]


def test_delta_m_counts_each_task_once_through_its_primary_metric(pair):
    report = Report(pair, [])
    (delta,) = [delta for delta in report.deltas if delta is not None]
    # acc 0.90 vs 0.80 → +12.5 %; nelbo 100 vs 110 (lower is better) → +9.0909 %:
    # (12.5 + 9.0909) / 2 = +10.7955 %. Counting KL (40 vs 20: −100 %), nll (0.20 vs 0.25) or
    # the losses would move it.
    assert delta.value.mean == pytest.approx(10.795454545)
    assert delta.terms == {
        "reconstruction": ["test/reconstruction/nelbo"],
        "digit": ["test/digit/acc"],
    }
    configs_table = tables(report.blocks())[1]
    assert column(configs_table, "Δm (%)") == ["baseline", "+10.80"]
    assert column(configs_table, "baseline") == ["", "c1"]
    assert column(configs_table, "Δm computed") == ["", "paired over seeds 0"]


def t_interval_by_scipy(values: list[float]) -> list[float]:
    low, high = stats.t.interval(
        0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values)
    )
    return [low, high]


def test_paired_seeds_give_the_per_seed_delta_m_its_interval_and_test(sweep):
    report = Report(sweep, [])
    hard = report.deltas[0]
    # seed 0: nelbo 100 vs 98 → −2.0408 %, acc 0.90 vs 0.80 → +12.5 %: Δm = +5.2296 %;
    # seed 1: nelbo 110 vs 102 → −7.8431 %, acc 0.94 vs 0.80 → +17.5 %: Δm = +4.8284 %.
    per_seed = [(-200 / 98 + 12.5) / 2, (-800 / 102 + 17.5) / 2]
    assert hard.paired_seeds == [0, 1]
    assert hard.per_seed == pytest.approx(per_seed)
    assert hard.value.n == 2
    assert hard.value.mean == pytest.approx(5.0290116)
    assert hard.value.std == pytest.approx(0.2836633)  # |5.2296 − 4.8284| / √2
    assert hard.value.ci95 == pytest.approx(t_interval_by_scipy(per_seed))
    # The paired test: the per-seed Δm against 0 (the only configuration tested: Holm is 1×).
    assert hard.raw_p_value == pytest.approx(stats.ttest_1samp(per_seed, 0).pvalue)
    assert report.p_values == [pytest.approx(hard.raw_p_value), None, None, None]
    configs_table = tables(report.blocks())[1]
    half = hard.value.ci95[1] - hard.value.mean  # 12.706 · 0.2837 / √2
    assert column(configs_table, "Δm (%)") == [
        f"+5.03 ± {half:.2f}",
        "baseline",
        "+1.25",
        "baseline",
    ]
    assert column(configs_table, "p (Holm)") == [f"{hard.raw_p_value:.3f}", "", "", ""]
    assert column(configs_table, "baseline") == ["c2", "", "c2", ""]
    assert column(configs_table, "Δm computed") == [
        "paired over seeds 0,1",
        "",
        "from seed means",
        "",
    ]
    assert column(configs_table, "runs") == ["2", "2", "1", "1"]


def test_unequal_seed_sets_use_the_seed_means(sweep):
    uncertainty = Report(sweep, []).deltas[2]
    # Seed 0 against seeds 0 and 1: the baseline's means, nelbo 100 and acc 0.80.
    # nelbo 95 → +5 %; acc 0.78 → −2.5 %: +1.25 %. (Pairing with seed 0 alone would give
    # (3.0612 − 2.5) / 2 = +0.28 %.)
    assert uncertainty.paired_seeds is None
    assert (uncertainty.value.mean, uncertainty.value.std, uncertainty.value.n) == (
        pytest.approx(1.25),
        None,
        1,
    )


def test_seeds_are_aggregated_as_mean_and_95_percent_t_interval(sweep):
    report = Report(sweep, [])
    nelbo = report.configs[0].stat("test/reconstruction/nelbo")
    assert (nelbo.mean, nelbo.std, nelbo.n) == (105, pytest.approx(7.0710678), 2)
    assert nelbo.ci95 == pytest.approx(t_interval_by_scipy([100, 110]))
    configs_table = tables(report.blocks())[1]
    acc_half = t_interval_by_scipy([0.90, 0.94])[1] - 0.92
    assert column(configs_table, "reconstruction/nelbo ↓")[0] == (
        f"105.00 ± {format_value(nelbo.ci95[1] - 105)}"
    )
    assert column(configs_table, "digit/acc ↑")[0] == f"0.9200 ± {format_value(acc_half)}"
    assert column(configs_table, "digit/acc ↑")[2] == "0.7800"  # one seed: no interval


def test_a_baseline_trained_for_another_number_of_epochs_is_not_used(tmp_path):
    root = tmp_path / "sweep"
    make_run(root / "0", [*SINGLE_TASK, "trainer.epochs=1"], vae_metrics(110, 0.80))
    make_run(root / "1", ["+experiment=vae_mnist"], vae_metrics(100, 0.90))
    report = Report(root, [])
    blocks = report.blocks()
    assert column(tables(blocks)[1], "Δm (%)") == ["baseline", "—"]
    assert notes(blocks) == [
        "Δm of c2 is undefined: no single-task baseline: the closest (c1) differs in "
        "trainer.epochs (1 vs 10)."
    ]


def test_a_baseline_may_differ_only_in_keys_that_change_neither_training_nor_measurement(
    tmp_path,
):
    root = tmp_path / "sweep"
    ignored = [
        "+experiment=other_name",
        "device=cpu",
        "trainer.progress=false",
        "dataset.root=/elsewhere",
        "dataset.download=false",
        "+logger.csv={}",
        "optimized_metric=test/digit/acc",
        "weighting=uncertainty",
    ]
    make_run(root / "0", [*SINGLE_TASK, *ignored], vae_metrics(110, 0.80))
    # Task weights count: this one is the baseline of c4 only.
    make_run(root / "1", [*SINGLE_TASK, "tasks.digit.weight=0.5"], vae_metrics(100, 0.80))
    make_run(root / "2", ["+experiment=vae_mnist", "weighting=pcgrad"], vae_metrics(100, 0.90))
    make_run(root / "3", ["+experiment=vae_mnist", "tasks.digit.weight=0.5"], vae_metrics(90, 1.0))
    report = Report(root, [])
    configs_table = tables(report.blocks())[1]
    assert column(configs_table, "baseline") == ["", "", "c1", "c2"]
    # c3 against c1: (+9.0909 + 12.5) / 2; c4 against c2: nelbo +10 %, acc +25 %.
    assert column(configs_table, "Δm (%)") == ["baseline", "baseline", "+10.80", "+17.50"]


def test_two_matching_baselines_leave_delta_m_undefined(tmp_path):
    root = tmp_path / "sweep"
    make_run(root / "0", SINGLE_TASK, vae_metrics(110, 0.80))
    make_run(root / "1", [*SINGLE_TASK, "weighting=uncertainty"], vae_metrics(100, 0.80))
    make_run(root / "2", ["+experiment=vae_mnist"], vae_metrics(100, 0.90))
    assert notes(Report(root, []).blocks()) == [
        "Δm of c3 is undefined: no single-task baseline: 2 configurations match (c1, c2)."
    ]


def test_a_baseline_value_of_zero_leaves_delta_m_undefined(tmp_path):
    root = tmp_path / "sweep"
    make_run(root / "0", SINGLE_TASK, vae_metrics(110, 0.0))
    make_run(root / "1", ["+experiment=vae_mnist"], vae_metrics(100, 0.90))
    assert notes(Report(root, []).blocks()) == [
        "Δm of c2 is undefined: test/digit/acc is 0 in the baseline c1."
    ]


def test_delta_m_option_replaces_a_tasks_primary_metric(pair, tmp_path, monkeypatch):
    def delta_m(keys: list[str]) -> float:
        return Report(pair, [], keys).deltas[1].value.mean

    # digit through nll: 0.20 vs 0.25 (lower is better) → +20 %; with nelbo's +9.0909 %:
    assert delta_m(["test/digit/nll"]) == pytest.approx(14.545454545)
    # Two metrics of one task are averaged first: digit (20 + 12.5) / 2 = 16.25 %.
    assert delta_m(["test/digit/nll", "test/digit/acc"]) == pytest.approx(12.670454545)
    # bce (nelbo − kl) 60 vs 90 → +33.333 %; with acc's +12.5 %:
    assert delta_m(["test/reconstruction/bce"]) == pytest.approx(22.9166667)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MTLRUN_COMMAND", "")
    monkeypatch.setattr(sys, "argv", ["mtlrun", "report", "pair", "delta_m=test/digit/nll"])
    cli.main()
    row = json.loads((pair / "report.json").read_text())["rows"][1]
    assert row["delta_m"]["mean"] == pytest.approx(14.545454545)
    assert row["delta_m_metrics"] == {
        "reconstruction": ["test/reconstruction/nelbo"],
        "digit": ["test/digit/nll"],
    }
    assert "delta_m=: test/digit/nll" in (pair / "report.md").read_text()


def test_a_run_without_directions_is_shown_but_gets_no_delta_m(tmp_path):
    root = tmp_path / "sweep"
    make_run(root / "0", SINGLE_TASK, vae_metrics(110, 0.80))
    make_run(root / "1", ["+experiment=vae_mnist"], vae_metrics(100, 0.90), old_summary=True)
    blocks = Report(root, []).blocks()
    runs_table, configs_table = tables(blocks)
    assert column(runs_table, "digit/acc ↑") == ["0.8000", "0.9000"]
    assert column(configs_table, "Δm (%)") == ["baseline", "—"]
    assert notes(blocks) == [
        "Δm of c2 is undefined: its summary.json has no metric directions (written by an older "
        "mtlrun); rerun it."
    ]

    old = tmp_path / "old"
    make_run(old / "0", ["+experiment=vae_mnist"], vae_metrics(100, 0.90), old_summary=True)
    with pytest.raises(UserError, match=r"^delta_m=test/digit/acc has no direction in any"):
        Report(old, [], ["test/digit/acc"])


def test_a_task_type_unknown_to_mtlrun_gets_delta_m_from_its_summary(tmp_path):
    root = tmp_path / "sweep"
    tasks = {"pitch": "my_lab_task", "digit": "classification"}
    directions = {"test/pitch/score": "max", "val/pitch/score": "max"}
    primary = {"pitch": "test/pitch/score", "digit": "test/digit/acc"}
    for job, (overrides, score, acc) in enumerate(
        [(SINGLE_TASK, 0.5, 0.8), (["+experiment=vae_mnist"], 0.6, 0.9)]
    ):
        make_run(
            root / str(job),
            overrides,
            {"test/pitch/loss": 1 - score, "test/pitch/score": score, "test/digit/acc": acc},
            tasks=tasks,
            directions=directions,
            primary_metrics=primary,
        )
    report = Report(root, [])
    # score 0.6 vs 0.5 (higher is better) → +20 %; acc → +12.5 %: +16.25 %.
    assert report.deltas[1].value.mean == pytest.approx(16.25)
    assert report.headers == ["pitch/loss ↓", "pitch/score ↑", "digit/acc ↑"]


def test_report_json_has_every_configuration_and_its_delta_m(sweep):
    # A NaN metric must come out as null: report.json is strict JSON.
    make_run(
        sweep / "6",
        [*SINGLE_TASK, "dataset=fashion_mnist", "seed=1"],
        vae_metrics(float("nan"), 0.60),
    )
    write_report(sweep, [])

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} in report.json")

    document = json.loads((sweep / "report.json").read_text(), parse_constant=no_constants)
    assert document["convention"] == CONVENTION
    assert document["sign"] == "positive = better than single-task"
    hard, single_task, uncertainty, fashion = document["rows"]

    assert hard["config"] == "c1"
    assert hard["overrides"] == {}
    assert (hard["sharing"], hard["weighting"]) == ("hard", "fixed")
    assert (hard["runs"], hard["seeds"]) == (["0", "1"], [0, 1])
    assert set(hard["metrics"]) == set(vae_metrics(0, 0))
    acc = hard["metrics"]["test/digit/acc"]
    assert (acc["mean"], acc["std"], acc["n"]) == (
        pytest.approx(0.92),
        pytest.approx(0.02828427),
        2,
    )
    assert acc["ci95"] == pytest.approx(t_interval_by_scipy([0.90, 0.94]))
    assert hard["primary_metrics"] == {
        "reconstruction": "test/reconstruction/nelbo",
        "digit": "test/digit/acc",
    }
    per_seed = [(-200 / 98 + 12.5) / 2, (-800 / 102 + 17.5) / 2]
    assert hard["delta_m"] == {
        "mean": pytest.approx(5.0290116),
        "std": pytest.approx(0.2836633),
        "n": 2,
        "ci95": pytest.approx(t_interval_by_scipy(per_seed)),
        "paired": True,
    }
    assert (hard["delta_m_reason"], hard["baseline"], hard["is_baseline"]) == (None, "c2", False)
    p_value = stats.ttest_1samp(per_seed, 0).pvalue
    assert hard["p_value"] == pytest.approx(p_value)
    assert hard["difference"] == ("better" if p_value < 0.05 else "no detectable difference")
    assert hard["dominated_by_front"] is None and hard["task_weights"] is None  # no front

    assert single_task["overrides"] == {"sharing": "single_task"}
    assert (single_task["runs"], single_task["sharing"]) == (["2", "3"], "single_task")
    assert single_task["delta_m"] is None
    assert single_task["delta_m_reason"] == "single-task baseline"
    assert (single_task["baseline"], single_task["is_baseline"]) == (None, True)
    assert (single_task["p_value"], single_task["difference"]) == (None, None)

    assert uncertainty["overrides"] == {"weighting": "uncertainty"}
    assert uncertainty["delta_m"] == {
        "mean": pytest.approx(1.25),
        "std": None,
        "n": 1,
        "ci95": None,
        "paired": False,
    }
    assert uncertainty["baseline"] == "c2"
    assert (uncertainty["p_value"], uncertainty["difference"]) == (None, None)  # one seed

    assert fashion["overrides"] == {"sharing": "single_task", "dataset": "fashion_mnist"}
    assert (fashion["runs"], fashion["seeds"]) == (["5", "6"], [0, 1])
    assert fashion["metrics"]["test/reconstruction/nelbo"] == {
        "mean": None,
        "std": None,
        "n": 2,
        "ci95": None,
    }
    assert fashion["is_baseline"] is True


def test_report_command_writes_markdown_html_json_and_curves(sweep, tmp_path):
    result = run_cli(tmp_path, "report", "sweep", "metrics=test/*/nelbo,test/digit/acc")
    assert result.returncode == 0, result.stderr
    assert "Δm" in result.stdout and "+5.03 ± 2.55" in result.stdout
    assert "paired t-test over seeds" in result.stdout
    assert "positive = better than single-task" in result.stdout
    assert (sweep / "report.json").is_file()
    markdown = (sweep / "report.md").read_text()
    runs_rows = re.findall(r"^\| \d \|", markdown, flags=re.MULTILINE)
    assert len(runs_rows) == 6
    assert "Δm = (1/T)" in markdown and "single_task" in markdown
    assert "digit/loss" not in markdown  # only the chosen metrics
    links = re.findall(r"\]\(([^)]+)\)", markdown)
    assert {"report_files/curves_reconstruction.png", "report_files/curves_digit.png"} <= set(links)
    assert "0/images/recon_e002.png" in links and "0/images/recon_e001.png" not in links
    for link in links:  # relative to the report: it opens from any working directory
        assert (sweep / unquote(link)).is_file(), link
    html = (sweep / "report.html").read_text()
    assert "<script" not in html and 'src="/' not in html and "<style>" in html


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_report_loads_in_chromium_with_every_image(sweep, tmp_path):
    write_report(sweep, [])
    page = load(sweep / "report.html", tmp_path / "profile")
    assert page.errors == []
    assert len(page.images) == 2 + 6 * 3  # two curves, three grids per run
    assert all(image["width"] > 0 for image in page.images), page.images

    # The check itself notices a missing image.
    (sweep / "3" / "images" / "samples_e002.png").unlink()
    page = load(sweep / "report.html", tmp_path / "profile")
    assert [image["src"] for image in page.images if image["width"] == 0] == [
        "3/images/samples_e002.png"
    ]
    assert page.errors


def test_missing_folder_is_one_line_and_exit_2(tmp_path):
    result = run_cli(tmp_path, "report", "missing")
    assert result.returncode == 2
    assert result.stderr == (
        f"mtlrun: error: missing does not exist in {tmp_path}; `mtlrun train` writes its runs "
        "into the outputs folder of the folder it runs in: go there, or pass the folder that "
        "holds them\n"
    )


def test_kl_in_delta_m_is_refused_with_one_line_and_exit_2(sweep, tmp_path):
    result = run_cli(tmp_path, "report", "sweep", "delta_m=test/reconstruction/kl")
    assert result.returncode == 2
    assert result.stderr == (
        "mtlrun: error: delta_m=test/reconstruction/kl: KL never enters Δm (the nelbo already "
        "contains it); name another metric, e.g. test/<task>/nelbo\n"
    )
    assert not (sweep / "report.json").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["empty"], "no runs under empty"),
        (["sweep", "metrics=test/nope/*"], "metrics='test/nope/*' matches no metric; found:"),
        (["sweep", "colour=red"], "'colour=red' is not an option"),
        (["sweep", "delta_m=test/digit/f1"], "delta_m=test/digit/f1 is reported by no run; found:"),
        (["sweep", "delta_m=test/loss"], "delta_m=test/loss is not a task's test metric"),
        ([], "usage: mtlrun report DIR"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(sweep, tmp_path, monkeypatch, capsys, arguments, message):
    # Through `cli.main` in this process, as `run_cli` calls it, with pytest's own fixtures.
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MTLRUN_COMMAND", "")  # the dispatcher sets it; restored afterwards
    monkeypatch.setattr(sys, "argv", ["mtlrun", "report", *arguments])
    with pytest.raises(SystemExit) as exit:
        cli.main()
    assert exit.value.code == 2
    stderr = capsys.readouterr().err
    assert message in stderr and len(stderr.strip().splitlines()) == 1


SAMPLES = [[0.91, 0.87, 0.95], [12.0, 15.5, 11.0, 13.25, 14.0], [-1.5, 2.0]]


@pytest.mark.parametrize("values", SAMPLES)
def test_the_interval_is_scipys_t_interval(values):
    assert t_interval(values) == pytest.approx(t_interval_by_scipy(values))


def test_the_interval_needs_two_finite_values_and_is_a_point_without_spread():
    assert t_interval([0.5]) is None
    assert t_interval([0.5, float("nan")]) is None
    assert t_interval([0.5, 0.5, 0.5]) == [0.5, 0.5]


@pytest.mark.parametrize("values", SAMPLES)
def test_the_paired_p_value_is_scipys_ttest_rel(values):
    baseline = [value * 0.9 + 0.1 * index**2 for index, value in enumerate(values)]
    differences = [a - b for a, b in zip(values, baseline, strict=True)]
    expected = stats.ttest_rel(values, baseline).pvalue
    assert paired_p_value(differences) == pytest.approx(expected)


def test_the_paired_test_is_undefined_without_spread_or_a_second_pair():
    assert paired_p_value([1.0]) is None
    assert paired_p_value([2.0, 2.0, 2.0]) is None  # t infinite: scipy would say p = 0
    assert paired_p_value([1.0, float("inf")]) is None


def test_holm_on_a_known_case():
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → kept monotone: 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.4]) == pytest.approx([0.8, 0.8])
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])  # at most 1
    assert holm([]) == []


def test_the_verdict_reads_the_corrected_p_value():
    assert verdict(+2.0, 0.01) == "better"
    assert verdict(-2.0, 0.01) == "worse"
    assert verdict(+2.0, 0.05) == "no detectable difference"
    assert verdict(+2.0, None) is None


# The front sweep: reconstruction (nelbo ↓) and digit (acc ↑) weighted at resolution 2; per grid
# point its metrics (the same on both seeds). Point 2 (all weight on reconstruction) is beaten
# by point 1 on both tasks.
GRID = {0: (120.0, 0.95), 1: (100.0, 0.90), 2: (102.0, 0.50)}
FRONT_SEEDS = {  # configuration → (nelbo, acc) of seeds 0 and 1
    "hard": [(100.0, 0.90), (110.0, 0.86)],  # means 105, 0.88: point 1 beats it
    "uncertainty": [(99.0, 0.89), (99.0, 0.89)],  # better nelbo than every point
    "single_task": [(96.0, 0.80), (100.0, 0.84)],  # means 98, 0.82: the best nelbo
}


@pytest.fixture
def front_sweep(tmp_path: Path) -> Path:
    """A scalarization grid, two methods and their single-task baseline, two seeds each, and
    one run on another dataset, which has no front."""
    root = tmp_path / "front"
    job = 0
    for point, (nelbo, acc) in GRID.items():
        for seed in (0, 1):
            grid = ["weighting=scalarization", "weighting.resolution=2", f"weighting.point={point}"]
            make_run(root / str(job), ["+experiment=vae_mnist", *grid, f"seed={seed}"],
                     vae_metrics(nelbo, acc))  # fmt: skip
            job += 1
    choices = {
        "hard": [],
        "uncertainty": ["weighting=uncertainty"],
        "single_task": ["sharing=single_task"],
    }
    for name, seeds in FRONT_SEEDS.items():
        for seed, (nelbo, acc) in enumerate(seeds):
            overrides = ["+experiment=vae_mnist", *choices[name], f"seed={seed}"]
            make_run(root / str(job), overrides, vae_metrics(nelbo, acc))
            job += 1
    make_run(
        root / str(job),
        ["+experiment=vae_mnist", "dataset=fashion_mnist", "seed=0"],
        vae_metrics(300, 0.5),
    )
    return root


def per_seed_delta_m(seeds: list[tuple[float, float]]) -> list[float]:
    """The reference formula: Δm of each seed against the single-task run of the same seed."""
    return [
        ((stl_nelbo - nelbo) / stl_nelbo + (acc - stl_acc) / stl_acc) / 2 * 100
        for (nelbo, acc), (stl_nelbo, stl_acc) in zip(
            seeds, FRONT_SEEDS["single_task"], strict=True
        )
    ]


def test_report_json_says_which_configurations_the_front_dominates(front_sweep):
    write_report(front_sweep, [])
    document = json.loads((front_sweep / "report.json").read_text())
    rows = {
        (row["weighting"], row["sharing"], row["overrides"].get("dataset")): row
        for row in document["rows"]
        if row["weighting"] != "scalarization"
    }
    grid = [row for row in document["rows"] if row["weighting"] == "scalarization"]
    assert [row["task_weights"] for row in grid] == [
        {"reconstruction": 0.0, "digit": 1.0},
        {"reconstruction": 0.5, "digit": 0.5},
        {"reconstruction": 1.0, "digit": 0.0},
    ]
    assert [row["dominated_by_front"] for row in grid] == [False, False, True]
    assert rows["fixed", "hard", None]["dominated_by_front"] is True
    assert rows["uncertainty", "hard", None]["dominated_by_front"] is False
    assert rows["fixed", "single_task", None]["dominated_by_front"] is False
    assert rows["fixed", "hard", "fashion_mnist"]["dominated_by_front"] is None  # no front
    assert "dominated by the front" in document["front_rule"]


def test_p_values_are_holm_corrected_over_the_configurations(front_sweep):
    rows = Report(front_sweep, []).as_json()["rows"]
    # Every multi-task configuration is tested against the baseline, the grid points too.
    seeds = {
        **{f"point {point}": [(nelbo, acc)] * 2 for point, (nelbo, acc) in GRID.items()},
        "hard": FRONT_SEEDS["hard"],
        "uncertainty": FRONT_SEEDS["uncertainty"],
    }
    raw = [stats.ttest_1samp(per_seed_delta_m(values), 0).pvalue for values in seeds.values()]
    # Holm by its definition: the i-th smallest of m times m − i + 1, the running maximum.
    order = sorted(raw)
    holm_by_rank = [
        min(1.0, max((len(raw) - rank) * order[rank] for rank in range(order.index(p) + 1)))
        for p in raw
    ]
    tested = [row for row in rows if row["p_value"] is not None]
    assert [row["p_value"] for row in tested] == pytest.approx(holm_by_rank)
    hard = next(row for row in tested if row["weighting"] == "fixed")
    assert hard["delta_m"]["mean"] == pytest.approx(
        statistics.fmean(per_seed_delta_m(seeds["hard"]))
    )
    assert hard["difference"] == "no detectable difference"
    baseline = next(row for row in rows if row["sharing"] == "single_task")
    assert baseline["p_value"] is None


def test_the_report_says_no_detectable_difference_and_draws_the_front(front_sweep):
    write_report(front_sweep, [])
    markdown = (front_sweep / "report.md").read_text()
    html = (front_sweep / "report.html").read_text()
    for text in (markdown, html):
        assert "no detectable difference" in text
        assert "paired t-test over seeds" in text and "Holm" in text
        assert "Scalarization front" in text
    header = next(line for line in markdown.splitlines() if "| p (Holm) |" in line)
    assert "| vs baseline |" in header and "| scalarization front |" in header
    figure = "report_files/front_reconstruction_nelbo_vs_digit_acc.png"
    assert f"]({figure})" in markdown and (front_sweep / figure).is_file()


def test_the_front_figure_views_the_configurations_and_names_what_lies_outside():
    """A grid end where one task is not learnt (10 %) and a configuration that gives up a task
    would squash the rest to a dot: the view holds the configurations near the others and the
    grid points among them, and the points outside are named with their coordinates."""
    from matplotlib.figure import Figure

    from mtlrun.report.front import Point, set_view

    others = [Point(f"m{i}", 96 + 0.1 * i, 94.5 - 0.05 * i, 0.2, 0.2) for i in range(8)]
    others.append(Point("gives_up", 96.8, 73.5, 0.1, 6.0))
    grid = [Point("0", 10.2, 95.6), Point("0.5", 96.1, 94.6), Point("1", 96.8, 10.1)]
    axes = Figure().subplots()
    outside = set_view(axes, grid, others)
    assert [p.label for p in outside] == ["0", "1", "gives_up"]
    low, high = axes.get_xlim()
    assert low < 96 - 0.2 and high > 96.7 + 0.2 and high - low < 2  # every near one, whole
    low, high = axes.get_ylim()
    assert low < 94.15 - 0.2 and high > 94.5 + 0.2 and high - low < 2
    # All near one another: matplotlib's own limits, nothing named.
    assert set_view(Figure().subplots(), grid[1:2], others[:8]) == []
