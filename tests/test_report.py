"""`mtlrun report`: tables, seed means, Δm against single-task baselines, files that open from
anywhere (checked in headless Chromium), one-line errors."""

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

from mtlrun import cli
from mtlrun.report.build import Report, write_report
from mtlrun.report.compare import configurations
from mtlrun.report.delta import delta_m
from mtlrun.report.document import Table
from tests.chromium import CHROMIUM, load
from tests.fake_runs import make_run


def vae_metrics(nelbo: float, acc: float) -> dict[str, float]:
    return {
        "test/loss": nelbo + 1.0,
        "test/reconstruction/loss": nelbo - 1.0,
        "test/reconstruction/nelbo": nelbo,
        "test/digit/loss": 1.0 - acc,
        "test/digit/acc": acc,
    }


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Two seeds of a hard-sharing run and of its single-task baseline, one seed with another
    weighting, and a single-task run on another dataset that must not be used."""
    root = tmp_path / "sweep"
    make_run(root / "0", ["+experiment=vae_mnist", "seed=0"], vae_metrics(100, 0.90))
    make_run(root / "1", ["+experiment=vae_mnist", "seed=1"], vae_metrics(110, 0.94))
    for job, (seed, nelbo) in enumerate([(0, 98), (1, 102)], start=2):
        overrides = ["+experiment=vae_mnist", "sharing=single_task", f"seed={seed}"]
        make_run(root / str(job), overrides, vae_metrics(nelbo, 0.80), sharing="single_task")
    make_run(
        root / "4",
        ["+experiment=vae_mnist", "weighting=uncertainty", "seed=0"],
        vae_metrics(95, 0.78),
    )
    make_run(
        root / "5",
        ["+experiment=vae_mnist", "sharing=single_task", "dataset=fashion_mnist", "seed=0"],
        vae_metrics(300, 0.50),
        sharing="single_task",
        dataset="fashion_mnist",
    )
    return root


def tables(blocks: list) -> list[Table]:
    return [block for block in blocks if isinstance(block, Table)]


def column(table: Table, name: str) -> list[str]:
    return [row[table.columns.index(name)] for row in table.rows]


def test_delta_m_matches_a_hand_computed_value(sweep):
    report = Report(sweep, [])
    configs = configurations(report.runs)
    single_task = [config for config in configs if config.first.single_task]
    # hard: nelbo 105 vs 100 (lower is better) → −5 %; acc 0.92 vs 0.80 → +15 %;
    # the losses do not count; per-task means first: (−5 + 15) / 2 = +5 %.
    assert delta_m(configs[0], single_task, report.metrics).value == pytest.approx(5.0)
    # uncertainty: nelbo 95 → +5 %; acc 0.78 → −2.5 %: (5 − 2.5) / 2 = +1.25 %.
    assert delta_m(configs[2], single_task, report.metrics).value == pytest.approx(1.25)

    runs_table, configs_table = tables(report.blocks())
    assert len(runs_table.rows) == 6
    assert column(configs_table, "Δm (%)") == ["+5.00", "baseline", "+1.25", "baseline"]
    assert column(configs_table, "baseline") == ["c2", "", "c2", ""]
    assert column(configs_table, "runs") == ["2", "2", "1", "1"]


def test_seeds_are_aggregated_as_mean_and_sample_std(sweep):
    configs_table = tables(Report(sweep, []).blocks())[1]
    assert column(configs_table, "reconstruction/nelbo ↓")[0] == "105.00 ± 7.0711"
    assert column(configs_table, "digit/acc ↑")[0] == "0.9200 ± 0.0283"
    assert column(configs_table, "digit/acc ↑")[2] == "0.7800"  # one seed: no ±


def test_closest_baseline_wins_and_a_tie_leaves_delta_m_undefined(tmp_path):
    root = tmp_path / "sweep"
    for job, latent in enumerate([4, 8]):
        overrides = ["sharing=single_task", f"backbone.latent_dim={latent}"]
        make_run(root / str(job), overrides, vae_metrics(100, 0.8), sharing="single_task")
    make_run(root / "2", ["backbone.latent_dim=4"], vae_metrics(90, 0.8))  # c1 is closer
    make_run(root / "3", ["optim.lr=0.01"], vae_metrics(90, 0.8))  # c1 and c2 tie

    blocks = Report(root, []).blocks()
    configs_table = tables(blocks)[1]
    assert column(configs_table, "Δm (%)") == ["baseline", "baseline", "+5.00", "—"]
    assert column(configs_table, "baseline")[2] == "c1"
    notes = [b.text for b in blocks if getattr(b, "text", "").startswith("Δm of")]
    assert notes == [
        "Δm of c4 is undefined: 2 single-task configurations fit reconstruction equally well."
    ]


def test_report_command_writes_markdown_html_and_curves(sweep, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mtlrun", "report", "sweep", "metrics=test/*/nelbo,test/digit/acc"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "Δm" in result.stdout and "+5.00" in result.stdout
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
    result = subprocess.run(
        [sys.executable, "-m", "mtlrun", "report", "missing"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert (
        result.stderr
        == "mtlrun: error: missing is not a folder; pass a run or sweep folder, e.g. outputs\n"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["empty"], "no runs under empty"),
        (["sweep", "metrics=test/nope/*"], "metrics='test/nope/*' matches no metric; found:"),
        (["sweep", "colour=red"], "'colour=red' is not an option"),
        ([], "usage: mtlrun report DIR"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(sweep, tmp_path, monkeypatch, capsys, arguments, message):
    # In this process (the subprocess test above covers the real command line): quicker.
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MTLRUN_COMMAND", "")  # the dispatcher sets it; restored afterwards
    monkeypatch.setattr(sys, "argv", ["mtlrun", "report", *arguments])
    with pytest.raises(SystemExit) as exit:
        cli.main()
    assert exit.value.code == 2
    stderr = capsys.readouterr().err
    assert message in stderr and len(stderr.strip().splitlines()) == 1
