import pytest

from mtlrun.errors import ConfigError
from tests.weighting.problems import (
    EQUAL_STEP,
    SharedVector,
    aggregations,
    assert_logs_match,
    loss_changes,
    make,
    train_records,
)


def test_cagrad_decreases_both_losses_where_the_sum_does_not():
    assert loss_changes("equal") == pytest.approx(EQUAL_STEP, abs=1e-5)
    assert all(change < 0 for change in loss_changes("cagrad"))


def test_a_negative_radius_is_a_config_error():
    with pytest.raises(ConfigError, match="weighting.c=-1.0"):
        make("cagrad", SharedVector([0.0]), c=-1.0)


def test_a_run_logs_cosines_and_weights(run_dir):
    with aggregations() as calls:
        records = train_records("cagrad", run_dir)
    assert len(records) == 2
    assert_logs_match(records, calls)
