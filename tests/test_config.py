"""Every shipped config composes; config mistakes give one line naming key, value and fix."""

import pytest

from mtlrun.config import config_dir
from mtlrun.errors import ConfigError
from mtlrun.train import build
from mtlrun.weighting import WEIGHTINGS
from tests.conftest import TINY, compose_config

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))


def test_the_required_experiments_exist():
    assert {"vae_mnist", "ae_mnist", "fashion_vae", "cnn_cifar10"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_names_its_runs(experiment):
    cfg = compose_config([f"+experiment={experiment}"])
    assert cfg.name == experiment
    assert cfg.tasks and cfg.backbone.name and cfg.dataset.name


@pytest.mark.parametrize("experiment", ["vae_mnist", "ae_mnist", "fashion_vae", "cnn_cifar10"])
def test_every_experiment_builds_on_data_of_its_shape(experiment):
    cfg = compose_config([f"+experiment={experiment}"])
    shape = {"cnn_cifar10": ["dataset.channels=3", "dataset.image_size=32"]}.get(experiment, [])
    target = "digit" if "digit" in cfg.tasks else "class"
    cfg = compose_config(
        [f"+experiment={experiment}", *TINY, *shape, f"dataset.target_name={target}"]
    )
    experiment_built = build(cfg)
    assert set(experiment_built.model.heads) <= set(cfg.tasks)


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("backbone.latent_dim=abc", "backbone.latent_dim"),
        ("trainer.precision=fp8", "trainer.precision='fp8' is not known; choose one of: fp32"),
        ("optim.name=adagrad", "optim.name='adagrad' is not known; choose one of: adam"),
        ("trainer.epochs=0", "trainer.epochs=0 must be at least 1"),
        ("device=tpu", "device='tpu'"),
        ("backbone.activation=swish", "backbone.activation='swish' is not known"),
        ("dataset.val_size=100000", "dataset.val_size=100000"),
    ],
)
def test_bad_values_are_one_line_errors(override, words):
    cfg = compose_config([*TINY, override])
    with pytest.raises(ConfigError) as error:
        build(cfg)
    assert words in str(error.value)
    assert "\n" not in str(error.value)


def test_impossible_combinations_fail_before_training():
    cases = {
        "tasks=[class,generation] backbone=dense_ae": "generation needs a backbone with a prior",
        "tasks=[reconstruction,generation] backbone=cnn": "use backbone=vae or backbone=conv_vae",
        "tasks=[digit]": "has no label 'digit'; its labels are: class",
        "tasks=[generation]": "add the reconstruction task",
        "backbone=cnn dataset.image_size=30": "divisible by 4",
    }
    for overrides, words in cases.items():
        cfg = compose_config([*TINY, *overrides.split()])
        with pytest.raises(ConfigError, match=words):
            build(cfg)


# Every weighting that works on what the tasks share, read from the registry so that methods
# added later are covered too.
SHARED_ONLY = [
    name for name in WEIGHTINGS.names if WEIGHTINGS.get(name).needs_shared_representation
]
SHARE_NOTHING = {
    "sharing=single_task": "sharing=single_task",
    "sharing=soft": "sharing=soft",
    "sharing=hard sharing.shared_layers=0": "sharing=hard with sharing.shared_layers=0",
}


def test_the_methods_on_shared_parameters_are_the_aggregators_and_gradnorm():
    expected = {"pcgrad", "mgda", "mgda_ub", "cagrad", "upgrad", "nashmtl", "gradnorm"}
    assert expected <= set(SHARED_ONLY)
    assert not {"equal", "fixed", "uncertainty", "dwa"} & set(SHARED_ONLY)


@pytest.mark.parametrize("weighting", SHARED_ONLY)
@pytest.mark.parametrize("sharing", SHARE_NOTHING)
def test_a_method_on_shared_parameters_with_a_strategy_sharing_none_fails_at_build(
    weighting, sharing
):
    cfg = compose_config(
        [*TINY, "tasks=[reconstruction,class]", f"weighting={weighting}", *sharing.split()]
    )
    with pytest.raises(ConfigError) as error:
        build(cfg)
    assert str(error.value) == (
        f"weighting={weighting} works on the parameters the tasks share, but "
        f"{SHARE_NOTHING[sharing]} shares none; use sharing=hard (shared_layers null or above "
        "0), cross_stitch or concat, or a loss weighting such as weighting=equal or uncertainty"
    )


def test_the_same_strategies_build_with_a_loss_weighting_and_the_method_with_hard_sharing():
    for sharing in SHARE_NOTHING:
        build(compose_config([*TINY, "tasks=[reconstruction,class]", *sharing.split()]))
    build(compose_config([*TINY, "tasks=[reconstruction,class]", "weighting=pcgrad"]))
