import torch

from tests.weighting.problems import aggregated, train_records


def test_upgrad_conflicts_with_no_task():
    jacobian = torch.tensor([[1.0, 0.0], [-2.0, 0.1]])
    assert jacobian[0] @ jacobian.mean(dim=0) < 0  # the mean would increase task 1's loss
    update = aggregated("upgrad", jacobian.tolist())
    assert (jacobian @ update >= -1e-6).all()


def test_upgrad_conflicts_with_none_of_many_tasks():
    jacobian = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    update = aggregated("upgrad", jacobian.tolist())
    assert (jacobian @ update >= -1e-5).all()


def test_a_run_logs_non_negative_cosines(run_dir):
    for record in train_records("upgrad", run_dir):
        assert record["train/reconstruction/cosine"] >= 0
        assert record["train/class/cosine"] >= 0
