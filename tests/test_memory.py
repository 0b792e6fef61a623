"""Sizes that cannot be allocated end in one line naming the setting and the memory: a model
too large for the free memory is refused before any of it is allocated (from a copy on the
meta device), and a real allocator's refusal (a petabyte: more than any machine's address
space, so refused whatever the kernel's overcommit policy) is named where it happens."""

import json

import pytest
import torch

from mtlrun.memory import out_of_memory
from tests.conftest import TINY
from tests.helpers import run_cli


def refused(tmp_path, *overrides: str) -> str:
    result = run_cli(tmp_path, "train", *TINY, *overrides)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "outputs").exists()  # the run folder Hydra made is removed
    return result.stderr


@pytest.mark.parametrize(
    ("overrides", "setting", "parameters"),
    [
        (["backbone.hidden_dims=[10000000]"], "backbone.hidden_dims=[10000000]", 16_300_000_824),
        (
            ["+task@tasks.class=classification", "tasks.class.hidden_dims=[3000000000]"],
            "tasks.class.hidden_dims=[3000000000]",
            93_000_652_834,
        ),
    ],
)
def test_a_model_too_large_is_refused_before_it_is_allocated(
    tmp_path, overrides, setting, parameters
):
    stderr = refused(tmp_path, *overrides)
    need = 2 * 4 * parameters / 2**30
    assert stderr.startswith(
        f"mtlrun: error: {setting} makes a model of {parameters:,} parameters, whose weights "
        f"and gradients alone need {need:.1f} GiB; this machine has "
    )
    assert stderr.endswith(" GiB free; lower it\n")


def test_data_too_large_to_allocate_names_the_dataset_settings(tmp_path):
    stderr = refused(tmp_path, "dataset.image_size=1000000")
    assert stderr.startswith(
        "mtlrun: error: dataset=synthetic does not fit in memory (an allocation"
    )
    assert "GiB failed); lower dataset.n_train=512, dataset.n_test=128, " in stderr
    assert "dataset.image_size=1000000" in stderr


def test_the_allocators_refusals_are_told_from_other_errors():
    with pytest.raises(RuntimeError) as refusal:
        torch.empty(2**50, dtype=torch.uint8)
    assert out_of_memory(refusal.value) == "an allocation of 1048576.0 GiB failed"
    with pytest.raises(MemoryError) as python_refusal:
        bytearray(2**50)
    assert out_of_memory(python_refusal.value) == "MemoryError"
    assert out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None


def test_a_step_that_cannot_allocate_fails_the_run_in_one_line(tmp_path, monkeypatch):
    """A step whose activations cannot be allocated (here a step that asks for a petabyte):
    the run ends as failed, with the batch sizes and the largest size setting to lower."""
    import mtlrun.loop
    from mtlrun.errors import UserError
    from mtlrun.lifecycle import train
    from tests.conftest import compose_config

    def step_too_large(*args, **kwargs):
        return torch.empty(2**50, dtype=torch.uint8)

    monkeypatch.setattr(mtlrun.loop, "train_step", step_too_large)
    run_dir = tmp_path / "run"
    with pytest.raises(UserError) as error:
        train(compose_config(TINY), run_dir)
    assert str(error.value) == (
        "training ran out of memory (an allocation of 1048576.0 GiB failed); lower "
        "trainer.batch_size=64 (or trainer.eval_batch_size=1000, or backbone.hidden_dims=[400]) "
        "and train again"
    )
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "failed"
    assert meta["error"] == "training ran out of memory (an allocation of 1048576.0 GiB failed)"
