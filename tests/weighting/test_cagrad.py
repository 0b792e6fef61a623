import pytest

from mtlrun.errors import ConfigError
from tests.weighting.problems import SharedVector, loss_changes, make, train_records


def test_cagrad_decreases_both_losses_where_the_sum_does_not():
    assert loss_changes("equal")[1] > 0
    assert all(change < 0 for change in loss_changes("cagrad"))


def test_a_negative_radius_is_a_config_error():
    with pytest.raises(ConfigError, match="weighting.c=-1.0"):
        make("cagrad", SharedVector([0.0]), c=-1.0)


def test_a_run_logs_cosines_and_weights(run_dir):
    for record in train_records("cagrad", run_dir):
        assert -1 <= record["train/class/cosine"] <= 1
        assert record["train/class/weight"] > 0
