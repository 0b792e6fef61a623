"""`mtlrun list [DIR]`: one line per run, oldest first; bad input is one line and exit 2."""

from tests.fake_runs import make_run
from tests.helpers import run_cli


def mtlrun_list(cwd, *arguments):
    return run_cli(cwd, "list", *arguments)


def test_one_line_per_run_oldest_first(tmp_path):
    outputs = tmp_path / "outputs"
    make_run(
        outputs / "multirun" / "2026-01-03" / "sweep" / "0",
        ["seed=0"],
        {
            "test/reconstruction/loss": 98.0,
            "test/reconstruction/nelbo": 100.0,
            "test/digit/acc": 0.9,
        },
        start_time="2026-01-03T10:00:00+00:00",
    )
    make_run(
        outputs / "runs" / "2026-01-02" / "12-00-00-000000_vae_mnist",
        [],
        {},
        status="failed",
        start_time="2026-01-02T12:00:00+00:00",
    )
    result = mtlrun_list(tmp_path)  # DIR defaults to outputs
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split() == [
        "2026-01-02",
        "12:00",
        "vae_mnist",
        "failed",
        "outputs/runs/2026-01-02/12-00-00-000000_vae_mnist",
    ]
    # The first task's primary metric.
    assert lines[1].split() == [
        "2026-01-03",
        "10:00",
        "vae_mnist",
        "completed",
        "test/reconstruction/nelbo",
        "100.00",
        "outputs/multirun/2026-01-03/sweep/0",
    ]


def key_metrics(outputs):
    result = mtlrun_list(outputs.parent, str(outputs))
    assert result.returncode == 0, result.stderr
    return {line.split()[-1]: line.split()[-3:-1] for line in result.stdout.splitlines()}


def test_key_metric_is_optimized_metric_else_primary_metric_else_the_last_one(tmp_path):
    outputs = tmp_path / "outputs"
    # The reconstruction task reports nll_iw last, but its primary metric is nelbo.
    metrics = {
        "test/reconstruction/nelbo": 100.0,
        "test/reconstruction/nll_iw": 95.0,
        "test/digit/acc": 0.9,
    }
    make_run(outputs / "primary", [], metrics)
    make_run(outputs / "optimized", ["optimized_metric=test/digit/acc"], metrics)
    make_run(outputs / "old", [], metrics, old_summary=True)  # no primary_metrics: the last one
    # A first task without a primary metric: the next task's.
    make_run(
        outputs / "generation_first",
        [],
        {"test/generation/loss": 3.0, "test/digit/acc": 0.8},
        tasks={"generation": "generation", "digit": "classification"},
    )
    assert key_metrics(outputs) == {
        str(outputs / "primary"): ["test/reconstruction/nelbo", "100.00"],
        str(outputs / "optimized"): ["test/digit/acc", "0.9000"],
        str(outputs / "old"): ["test/reconstruction/nll_iw", "95.00"],
        str(outputs / "generation_first"): ["test/digit/acc", "0.8000"],
    }


def test_missing_folder_and_no_runs_exit_2_with_one_line(tmp_path):
    """Where no outputs folder exists, it is not suggested: the line says where runs go."""
    nowhere = (
        f"does not exist in {tmp_path}; `mtlrun train` writes its runs into the outputs folder "
        "of the folder it runs in: go there, or pass the folder that holds them\n"
    )
    for args, name in (((), "outputs"), (("nowhere",), "nowhere")):
        missing = mtlrun_list(tmp_path, *args)
        assert missing.returncode == 2
        assert missing.stderr == f"mtlrun: error: {name} {nowhere}"
    (tmp_path / "outputs").mkdir()
    missing = mtlrun_list(tmp_path, "nowhere")
    assert missing.stderr == (
        "mtlrun: error: nowhere does not exist; pass a run or sweep folder, e.g. outputs\n"
    )
    empty = mtlrun_list(tmp_path)
    assert empty.returncode == 2
    assert empty.stderr == (
        "mtlrun: error: no runs under outputs that can be read (no meta.json found)\n"
    )
