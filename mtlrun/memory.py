"""Sizes that cannot be allocated, as one line naming the setting to lower: a model whose
weights and gradients alone exceed the free memory is refused from a copy built on the meta
device (which allocates nothing) before the real one is made; the allocator's out-of-memory
errors met while the data loads, the model is built or a step runs say what did not fit."""

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig
from torch import nn

from mtlrun.errors import UserError

GIB = 2**30
# The settings whose numbers make a model large, per part; the one holding the largest number
# is the one a refusal names.
MODEL_SIZES = {"backbone": ("hidden_dims", "latent_dim", "channels"), "task": ("hidden_dims",)}
DATA_SIZES = ("n_train", "n_test", "image_size", "channels", "input_dim")


def free_bytes(device: torch.device) -> int | None:
    """The memory a new allocation can take on `device`: the GPU's free memory, or the
    machine's available memory (Linux); None where it cannot be read."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def out_of_memory(error: BaseException) -> str | None:
    """What an allocator's out-of-memory error says, in a few words; None for other errors."""
    text = str(error).splitlines()[0] if str(error) else ""
    if isinstance(error, MemoryError):
        return "MemoryError"
    if not isinstance(error, torch.OutOfMemoryError) and not (
        isinstance(error, RuntimeError)
        and any(words in text for words in ("can't allocate memory", "not enough memory"))
    ):
        return None
    asked = re.search(r"allocate (\d+) bytes", text)
    if asked:  # the CPU allocator's
        return f"an allocation of {gib(int(asked.group(1)))} failed"
    return ". ".join(text.split(". ")[:2])[:120]  # "CUDA out of memory. Tried to allocate X"


def gib(size: float) -> str:
    return f"{size / GIB:.1f} GiB"


def shown(value: Any) -> str:
    return f"[{','.join(str(v) for v in value)}]" if isinstance(value, ListConfig) else str(value)


def largest_setting(cfg: DictConfig) -> str:
    """`key=value` of the size setting holding the largest number (backbone widths, a task's
    hidden layers), the likeliest to have made the model too large."""
    settings = [
        (f"backbone.{key}", cfg.backbone[key])
        for key in MODEL_SIZES["backbone"]
        if key in cfg.backbone
    ]
    for name, task in (cfg.get("tasks") or {}).items():
        settings += [
            (f"tasks.{name}.{key}", task[key]) for key in MODEL_SIZES["task"] if key in task
        ]

    def largest(value: Any) -> int:
        numbers = list(value) if isinstance(value, ListConfig) else [value]
        return max((int(n) for n in numbers if isinstance(n, int)), default=0)

    if not settings:
        return "the model's sizes"
    key, value = max(settings, key=lambda setting: largest(setting[1]))
    return f"{key}={shown(value)}"


def data_settings(dataset: DictConfig) -> str:
    """The dataset's size settings, as `key=value, ...` (or its name where it has none)."""
    sizes = [f"dataset.{key}={dataset[key]}" for key in DATA_SIZES if key in dataset]
    return ", ".join(sizes) or f"dataset={dataset.name}'s size"


def check_model_fits(
    cfg: DictConfig, make_model: Callable[[], nn.Module], device: torch.device, copies: int
) -> None:
    """Refuse a model whose weights and gradients (4 bytes each per parameter, before the
    optimiser's state and the activations) exceed the memory free on `device`, `copies` being
    the processes of this run that each hold one there. `make_model` is called on the meta
    device, where no memory is taken and the random numbers drawn are put back; a model that
    cannot be built there is not estimated (the out-of-memory errors still are caught)."""
    free = free_bytes(device)
    if free is None:
        return
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            parameters = sum(p.numel() for p in make_model().parameters())
    except Exception:  # a part that computes on its tensors while it is built
        return
    need = 2 * 4 * parameters * copies
    if need <= free:
        return
    where = "this machine has" if device.type == "cpu" else f"{device} has"
    share = f" for {copies} ranks" if copies > 1 else ""
    raise UserError(
        f"{largest_setting(cfg)} makes a model of {parameters:,} parameters, whose weights and "
        f"gradients alone need {gib(need)}{share}; {where} {gib(free)} free; lower it"
    )


@contextmanager
def allocating(what: str, settings: str) -> Iterator[None]:
    """Turn an out-of-memory error met while `what` is made into one line naming the
    `settings` to lower."""
    try:
        yield
    except (MemoryError, RuntimeError) as error:
        short = out_of_memory(error)
        if short is None:
            raise
        raise UserError(f"{what} does not fit in memory ({short}); lower {settings}") from None
