"""Every shipped config composes; config mistakes give one line naming key, value and fix."""

import pytest
from hydra.errors import ConfigCompositionException

from mtlrun.compose import validate
from mtlrun.config import config_dir, error_line
from mtlrun.errors import ConfigError
from mtlrun.experiment import build
from mtlrun.parts import WEIGHTINGS
from tests.conftest import TINY, compose_config


def validate_and_build(cfg):
    """Everything a run checks before training: the config's values (`validate`, before any
    folder), then what needs the data (building the experiment)."""
    validate(cfg)
    return build(cfg)


NO_RECONSTRUCTION = "~task@tasks.reconstruction"  # train.yaml's default task, dropped
CLASS = "+task@tasks.class=classification"
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
        ("trainer.precision=fp8", "trainer.precision='fp8' is not known; choose one of: fp32"),
        ("optim.name=adagrad", "optim='adagrad' is not known; choose one of: adam, adamw, sgd"),
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


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        ("optim.lr=0", "optim.lr=0.0 must be above 0"),
        ("optim.lr=-1e-3", "optim.lr=-0.001 must be above 0"),
        ("optim.lr=nan", "optim.lr=nan must be a finite number above 0"),
        ("optim.betas=[0.9,1.0]", "optim.betas[1]=1.0 must be in [0, 1)"),
        ("optim.betas=[0.9]", "optim.betas=[0.9] must be two values in [0, 1), e.g. [0.9, 0.999]"),
        ("optim.eps=0", "optim.eps=0.0 must be above 0"),
        ("optim.weight_decay=-0.1", "optim.weight_decay=-0.1 must be at least 0"),
        ("optim=sgd optim.momentum=1", "optim.momentum=1.0 must be in [0, 1)"),
        ("backbone.hidden_dims=[64,0]", "backbone.hidden_dims[1]=0 must be at least 1"),
        ("backbone.latent_dim=0", "backbone.latent_dim=0 must be at least 1"),
        ("backbone=dense_ae backbone.latent_dim=-2", "backbone.latent_dim=-2 must be at least 1"),
        ("backbone.beta=-1", "backbone.beta=-1.0 must be at least 0"),
        ("backbone=mlp backbone.dropout=1", "backbone.dropout=1.0 must be in [0, 1)"),
        ("backbone=cnn backbone.channels=[8,0]", "backbone.channels[1]=0 must be at least 1"),
        ("backbone=cnn backbone.kernel_size=0", "backbone.kernel_size=0 must be at least 1"),
        ("backbone=cnn backbone.conv_dropout=-0.5", "backbone.conv_dropout=-0.5 must be in [0, 1)"),
        ("backbone=conv_vae backbone.latent_dim=0", "backbone.latent_dim=0 must be at least 1"),
        (
            "+task@tasks.class=classification tasks.class.weight=-1",
            "tasks.class.weight=-1.0 must be at least 0",
        ),
        (
            "+task@tasks.class=classification tasks.class.hidden_dims=[0]",
            "tasks.class.hidden_dims[0]=0 must be at least 1",
        ),
        (
            "+task@tasks.class=classification tasks.class.dropout=1.5",
            "tasks.class.dropout=1.5 must be in [0, 1)",
        ),
        ("tasks.reconstruction.weight=-0.5", "tasks.reconstruction.weight=-0.5 must be at least 0"),
        ("trainer.grad_clip=-1", "trainer.grad_clip=-1.0 must be at least 0"),
        ("seed=1.5", "seed=1.5 must be an integer, e.g. seed=0"),
        ("seed=abc", "seed='abc' must be an integer, e.g. seed=0"),
        (
            "~task@tasks.reconstruction",
            "tasks is empty; add one, e.g. +task@tasks.reconstruction=reconstruction",
        ),
        (
            "name=../../etc",
            "name='../../etc' contains a path separator; a run's name is part of one folder "
            "name, e.g. name=vae_small",
        ),
    ],
)
def test_values_out_of_range_are_refused_before_training_with_the_allowed_range(overrides, line):
    with pytest.raises(ConfigError) as error:
        validate_and_build(compose_config([*TINY, *overrides.split()]))
    assert str(error.value) == line


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "backbone.latent_dim=abc",
            "backbone.latent_dim: Value 'abc' of type 'str' could not be converted to Integer",
        ),
        (
            "optim.betas=[0.9,x]",
            "optim.betas[1]: Value 'x' of type 'str' could not be converted to Float",
        ),
        (
            "dataset.val_size=1.5",
            "dataset.val_size: Value '1.5' of type 'float' could not be converted to Integer",
        ),
        (
            "trainer.batch_size=abc",
            "trainer.batch_size: Value 'abc' of type 'str' could not be converted to Integer",
        ),
    ],
)
def test_a_part_option_of_the_wrong_type_is_refused_as_the_config_composes(override, line):
    """The parts' options are their registered schemas, so Hydra checks the types when it
    composes; the CLI reports the cause in one line."""
    with pytest.raises(ConfigCompositionException) as error:
        compose_config([*TINY, override])
    assert error_line(error.value.__cause__) == line


def test_a_misspelt_key_added_with_plus_names_the_closest_real_key():
    cases = {
        "+trainer.epoch=3": "trainer.epoch: Key 'epoch' not in 'TrainerConfig'; "
        "did you mean trainer.epochs?",
        "+backbone.latnt_dim=8": "backbone.latnt_dim: Key 'latnt_dim' not in 'VAEConfig'; "
        "did you mean backbone.latent_dim?",
        "+optim.zzz=1": "optim.zzz: Key 'zzz' not in 'AdamConfig'; its keys: name, lr, "
        "weight_decay, schedule, step_epochs, gamma, betas, eps",
    }
    for override, line in cases.items():
        with pytest.raises(ConfigError) as error:
            validate_and_build(compose_config([*TINY, override]))
        assert str(error.value) == line


def test_impossible_combinations_fail_before_training():
    cases = {
        f"{NO_RECONSTRUCTION} {CLASS} +task@tasks.generation=generation backbone=dense_ae": (
            "generation needs a backbone with a prior"
        ),
        "+task@tasks.generation=generation backbone=cnn": "use backbone=vae or backbone=conv_vae",
        f"{NO_RECONSTRUCTION} +task@tasks.digit=classification": (
            "has no label 'digit'; its labels are: class"
        ),
        f"{NO_RECONSTRUCTION} +task@tasks.generation=generation": "add the reconstruction task",
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
        [*TINY, "+task@tasks.class=classification", f"weighting={weighting}", *sharing.split()]
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
        cfg = compose_config([*TINY, "+task@tasks.class=classification", *sharing.split()])
        validate_and_build(cfg)
    cfg = compose_config([*TINY, "+task@tasks.class=classification", "weighting=pcgrad"])
    validate_and_build(cfg)


@pytest.mark.parametrize("override", ["optim.lr=0", "optim.betas=[0.9,1.0]", "trainer.epochs=0"])
def test_optimiser_and_trainer_values_are_checked_before_the_data_loads(override, tmp_path):
    """With no data at the root and downloads off, loading would fail first: the value's own
    error comes out, so a mistake costs no data loading."""
    missing = [f"dataset.root={tmp_path}", "dataset.download=false"]
    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        validate_and_build(compose_config(["dataset=mnist", *missing, "device=cpu", override]))


def test_setting_a_parts_name_key_says_to_choose_the_option_instead():
    """`optim.name=sgd` keeps Adam's keys in the node; the message names them and the fix."""
    cases = {
        "optim.name=sgd": "optim.name=sgd keeps keys of another option (betas, eps); choose the "
        "option itself, optim=sgd, which replaces the whole node",
        "backbone.name=cnn": "backbone.name=cnn keeps keys of another option (beta, latent_dim); "
        "choose the option itself, backbone=cnn, which replaces the whole node",
        f"{CLASS} tasks.class.type=reconstruction": "tasks.class.type=reconstruction keeps keys "
        "of another option (activation, dropout, hidden_dims, target); choose the option "
        "itself, +task@tasks.class=reconstruction, which replaces the whole node",
    }
    for overrides, line in cases.items():
        with pytest.raises(ConfigError) as error:
            validate_and_build(compose_config([*TINY, *overrides.split()]))
        assert str(error.value) == line
