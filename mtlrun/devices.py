"""`device=auto|cpu|cuda|cuda:N` as a torch device, refused in one line when it is not there."""

import torch

from mtlrun.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ConfigError(f"device={name} but no CUDA GPU is visible; use device=cpu or auto")
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device={name} but only {count} GPU(s) are visible; use cuda:0 to cuda:{count - 1}"
            )
    elif device.type != "cpu":
        raise ConfigError(f"device={name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device
