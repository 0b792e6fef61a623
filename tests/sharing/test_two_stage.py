"""Two-stage training: reconstruction first, then heads on the frozen encoder's codes."""

import pytest
import torch

from mtlrun.checkpoint import load_checkpoint
from mtlrun.errors import ConfigError
from mtlrun.experiment import build
from mtlrun.lifecycle import train
from mtlrun.runfolder import read_json
from mtlrun.sharing.two_stage import TwoStageSharing
from tests.conftest import compose_config
from tests.sharing import SMALL, config_error, read_metrics

TWO_STAGE = [
    *SMALL,
    "+task@tasks.class=classification",
    "sharing=two_stage",
    "sharing.stage1_epochs=2",
    "trainer.epochs=5",
]


def test_stage_two_keeps_the_encoder_and_trains_the_heads(run_dir, monkeypatch):
    after_stage1 = {}
    begin_epoch = TwoStageSharing.begin_epoch

    def snapshot(model, epoch):
        if epoch == 3:
            after_stage1.update({k: v.clone() for k, v in model.state_dict().items()})
        begin_epoch(model, epoch)

    monkeypatch.setattr(TwoStageSharing, "begin_epoch", snapshot)
    train(compose_config(TWO_STAGE), run_dir)
    final = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    for key, value in final.items():
        if key.startswith(("backbone.", "heads.reconstruction.")):
            assert torch.equal(value, after_stage1[key]), key
    head = "heads.class.net.0.weight"
    assert not torch.equal(final[head], after_stage1[head])

    records = read_metrics(run_dir)
    assert [(r["split"], r["stage"]) for r in records] == [
        *[("train", 1), ("val", 1)] * 2,
        *[("train", 2), ("val", 2)] * 3,
        ("test", 2),
    ]
    reconstruction = [r["val/reconstruction/loss"] for r in records if r["split"] == "val"]
    assert reconstruction[0] > reconstruction[1] == reconstruction[2] == reconstruction[4]
    accuracy = [r["val/class/acc"] for r in records if r["split"] == "val"]
    assert max(accuracy[:2]) < 0.3 < accuracy[4]  # the head is untrained in stage 1


def test_stages_switch_what_is_trained():
    model = build(compose_config(TWO_STAGE)).model
    model.begin_epoch(1)
    model.train()
    assert model.stage == 1 and model.trains("reconstruction") and not model.trains("class")
    assert model.backbone.training and all(p.requires_grad for p in model.backbone.parameters())
    model.begin_epoch(3)
    model.train()  # what the loop calls after begin_epoch: the frozen encoder stays in eval mode
    assert model.stage == 2 and model.trains("class") and not model.trains("reconstruction")
    assert not model.backbone.training and model.heads["class"].training
    assert not any(p.requires_grad for p in model.backbone.parameters())


def test_bad_combinations_are_config_errors():
    assert "no task reconstructs" in config_error([*TWO_STAGE, "~task@tasks.reconstruction"])
    assert "every task is a reconstruction" in config_error([*TWO_STAGE, "~task@tasks.class"])
    message = config_error([*TWO_STAGE, "sharing.stage1_epochs=0"])
    assert message == "sharing.stage1_epochs=0 must be at least 1"
    model = build(compose_config([*TWO_STAGE, "sharing.stage1_epochs=4"])).model
    with pytest.raises(ConfigError, match="stage1_epochs=4 leaves no epoch for stage 2 with "):
        model.check_epochs(4)
    model.check_epochs(5)


def test_the_vector_experiment_pretrains_an_autoencoder_and_fits_learners_on_its_codes(run_dir):
    """`ae_two_stage_synthetic`: a Gaussian autoencoder of vectors near a 3-dimensional subspace
    (noise σ = 0.1), then a small learner per task on the frozen 4-dimensional codes. The codes
    carry the targets (unit variance, noise 0.1): both tasks end near the noise floor."""
    cfg = compose_config(
        [
            "+experiment=ae_two_stage_synthetic",
            "sharing.stage1_epochs=10",
            "trainer.epochs=20",
            "trainer.progress=false",
            "device=cpu",
        ]
    )
    train(cfg, run_dir)
    metrics = read_json(run_dir / "summary.json")["metrics"]
    assert metrics["test/reconstruction/mse"] < 0.02  # ≈ the input noise variance, 0.01
    assert metrics["test/y0/mse"] < 0.05 and metrics["test/y1/mse"] < 0.05
    sigma = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"][
        "heads.reconstruction.log_sigma"
    ]
    assert sigma.exp().max() < 0.5  # learned down from 1 towards the noise
    stages = [r.get("stage") for r in read_metrics(run_dir) if r["split"] == "train"]
    assert stages == [1] * 10 + [2] * 10
