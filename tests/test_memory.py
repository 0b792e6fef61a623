"""Sizes that cannot be allocated end in one line naming the setting and the memory: a model
too large for the free memory is refused before any of it is allocated (from a copy on the
meta device), and a real allocator's refusal (a petabyte: more than any machine's address
space, so refused whatever the kernel's overcommit policy) is named where it happens."""

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
